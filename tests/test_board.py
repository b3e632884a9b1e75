"""The board's model: chosen by budgets from the device runs, or named; the zoo plot and table (issue #17)."""

import json

import pytest
from omegaconf import OmegaConf

from conftest import smoke_cfg
from wordrec.errors import ConfigError, DataError
from wordrec.pipeline.zoo import choose, device_accuracy, eval_key, zoo_rows

DEV = "iiit5k_test_dev"


def _ev(**acc):
    return {m: {DEV: {"accuracy": a, "accuracy_alnum_ci": a, "ned": 0.9, "n": 10}} for m, a in acc.items()}


def _dev(insns, flash=1_000_000, arena=300_000):
    return {"insns_per_inference": insns, "flash_bytes": flash, "arena_bytes": arena, "text_agreement": 1.0,
            "device_kernels": "float", "weights": "int8", "board": "qemu", "macs_per_insn": 0.2}


MCU = {"crnn_lite": _dev(3.7e8), "svtr": _dev(1.0e9), "ppocrv6_small": _dev(2.4e9, flash=3_500_000)}
EV = _ev(crnn_lite=0.45, svtr=0.0, ppocrv6_small=0.97, crnn_grid=0.57, crnn=0.55)
BUDGETS = {"flash_bytes": 4 * 2**20, "arena_bytes": 512 * 1024, "insns_per_inference": 2e10}


def test_auto_ships_the_most_accurate_run_within_budgets():
    assert choose(MCU, EV, DEV, BUDGETS)[0] == "ppocrv6_small"
    tight = {**BUDGETS, "flash_bytes": 2 * 2**20}
    shipped, verdicts = choose(MCU, EV, DEV, tight)
    assert shipped == "crnn_lite"
    assert verdicts["ppocrv6_small"]["violations"] == ["flash_bytes: 3,500,000 > 2,097,152"]
    assert choose(MCU, EV, DEV, {**BUDGETS, "insns_per_inference": None, "flash_bytes": None})[0] == "ppocrv6_small"


def test_named_models_and_impossible_budgets_fail_naming_the_key():
    assert choose(MCU, EV, DEV, BUDGETS, "svtr")[0] == "svtr"
    with pytest.raises(ConfigError, match=r"board.model: 'crnn' did not run on the device"):
        choose(MCU, EV, DEV, BUDGETS, "crnn")
    with pytest.raises(ConfigError, match=r"board.model: 'ppocrv6_small' exceeds .*insns_per_inference"):
        choose(MCU, EV, DEV, {**BUDGETS, "insns_per_inference": 1e9}, "ppocrv6_small")
    with pytest.raises(ConfigError, match=r"board.budgets: no device run meets them .*crnn_lite: arena_bytes"):
        choose(MCU, EV, DEV, {**BUDGETS, "arena_bytes": 1000})
    with pytest.raises(DataError, match="no device runs"):
        choose({}, EV, DEV, BUDGETS)


def test_zoo_rows_join_the_reports():
    assert eval_key("crnn", EV) == "crnn_grid" and eval_key("svtr", EV) == "svtr"
    quant = {"crnn": {"onnx_qdq": {"sets": {DEV: {"fp32": 0.56, "int8": 0.55}}}, "inc": {"skipped": "why"}}}
    bench = {"crnn": {"onnxruntime-fp32": {"latency_ms_b1": 7.0}, "onnxruntime-int8": {"latency_ms_b1": 4.0}},
             "tesseract": {"tesseract-lstm": {"latency_ms_b1": 300.0}}}
    rows = {(r.model, r.variant): r for r in zoo_rows(EV, quant, bench, {"svtr": MCU["svtr"]}, DEV)}
    assert rows[("crnn", "fp32")].dev_accuracy == 0.57 and rows[("crnn", "fp32")].cpu_latency_ms == 7.0
    assert rows[("crnn", "int8 onnx_qdq")].dev_accuracy == 0.55 and rows[("crnn", "int8 onnx_qdq")].cpu_latency_ms == 4.0
    # quantize scores a subset; its own FP32 figure on those images rides along, evaluate's (all images) does not
    assert rows[("crnn", "int8 onnx_qdq")].fp32_same_images == 0.56 and rows[("crnn", "fp32")].fp32_same_images is None
    assert rows[("svtr", "M55 (float kernels, int8 weights)")].m55_insns == 1.0e9
    assert not any(m == "tesseract" for m, _ in rows)  # a peer engine, not a model of ours
    assert ("crnn", "int8 inc") not in rows


def test_zoo_table_shows_int8_beside_fp32_on_the_same_images():
    from wordrec.pipeline.report import zoo_table

    quant = {"crnn": {"onnx_qdq": {"sets": {DEV: {"fp32": 0.56, "int8": 0.55}}}}}
    board = {"dev_set": DEV, "model": "svtr", "chosen_by": "auto", "budgets": BUDGETS}
    text = zoo_table({"board": board, "eval": EV, "quantize": quant, "bench": {}}, {"svtr": MCU["svtr"]})
    assert "| `crnn` | int8 onnx_qdq | 55.0 (FP32 56.0 on the same images) |" in text
    assert "| `crnn` | fp32 | 57.0 |" in text  # evaluate's figure, every image


def _int8(insns, acc, check_set=DEV):
    # the compile check's own figure (acc, a sample of the set) is reported, not ranked on
    return {**_dev(insns), "kernels": "int8", "device_kernels": "integer", "check_set": check_set,
            "int8_word_accuracy_alnum_ci": acc, "bit_exact": True}


def _qdq(**acc):  # quantize.json: the QDQ ONNX's INT8 accuracy on the dev set
    return {m: {"onnx_qdq": {"sets": {DEV: {"fp32": 0.9, "int8": a}}}} for m, a in acc.items()}


def test_int8_device_runs_carry_the_qdq_dev_accuracy_and_compete():
    mcu = {**MCU, "ppocrv6_small_int8": _int8(3.0e8, 0.99)}
    quant = _qdq(ppocrv6_small=0.965)
    shipped, verdicts = choose(mcu, EV, DEV, BUDGETS, quant=quant)
    assert shipped == "ppocrv6_small" and verdicts["ppocrv6_small_int8"]["dev_accuracy"] == 0.965
    # within an instruction budget only the integer build meets, it ships
    assert choose(mcu, EV, DEV, {**BUDGETS, "insns_per_inference": 1e9}, quant=quant)[0] == "ppocrv6_small_int8"
    # no QDQ figure on the dev set (quantize did not measure it): no accuracy, it cannot win by accident
    other = {"crnn_lite_int8": _int8(2.6e7, 0.99), "crnn_lite": MCU["crnn_lite"]}
    assert choose(other, EV, DEV, BUDGETS)[0] == "crnn_lite"
    rows = {(r.model, r.variant): r for r in zoo_rows(EV, quant, {}, mcu, DEV)}
    r = rows[("ppocrv6_small", "M55 (integer kernels, int8 weights)")]
    assert (r.dev_accuracy, r.device, r.m55_insns) == (0.965, "ppocrv6_small_int8", 3.0e8)
    assert rows[("ppocrv6_small", "M55 (float kernels, int8 weights)")].dev_accuracy == 0.97
    assert not any(m.endswith("_int8") for m, _ in rows)


def test_board_stage_copies_the_chosen_elf_and_draws_the_zoo(tmp_path):
    from stages import board

    files = {"eval": EV, "quantize": {}, "bench": {}}
    for k, v in files.items():
        (tmp_path / f"{k}.json").write_text(json.dumps(v))
    (tmp_path / "mcu").mkdir()
    for m, d in MCU.items():
        (tmp_path / "mcu" / f"{m}.json").write_text(json.dumps({m: d}))
        (tmp_path / "elf" / m).mkdir(parents=True)
        (tmp_path / "elf" / m / "app.elf").write_bytes(b"\x7fELF" + m.encode())
    ours = ",".join(str(tmp_path / "mcu" / f"{m}.json") for m in ("crnn_lite", "svtr"))
    inputs = {k: str(tmp_path / f"{k}.json") for k in files} | {"mcu": ours, "mcu_imported": str(tmp_path / "mcu"),
                                                                  "elfs": str(tmp_path / "elf"),
                                                                  "elfs_int8": str(tmp_path / "elf8")}
    outputs = {"out": tmp_path / "board", "report": tmp_path / "board.json", "zoo": tmp_path / "zoo.png"}
    cfg = smoke_cfg()
    OmegaConf.update(cfg, "mcu.imported", {"ppocrv6_small": {"weights": "float32", "images": 1}}, merge=False)
    OmegaConf.update(cfg, "board.budgets.insns_per_inference", 3e9)  # the float 2.4 G-instruction run is a candidate
    m = board.run(cfg, inputs, outputs)
    assert m["model"] == "ppocrv6_small" and m["candidates"]["crnn_lite"]["violations"] == []
    # an import's int8-kernel run (params mcu.imported_int8) is read as reports/mcu/<name>_int8.json and competes
    (tmp_path / "mcu" / "ppocrv6_small_int8.json").write_text(json.dumps({"ppocrv6_small_int8": _int8(3.9e8, 0.9)}))
    (tmp_path / "quantize.json").write_text(json.dumps(_qdq(crnn_lite=0.44, ppocrv6_small=0.98)))
    (tmp_path / "elf8" / "ppocrv6_small").mkdir(parents=True)
    (tmp_path / "elf8" / "ppocrv6_small" / "app.elf").write_bytes(b"\x7fELFv6int8")
    OmegaConf.update(cfg, "mcu.imported_int8", {"ppocrv6_small": {"images": 1, "stem_strips": 0}}, merge=False)
    m = board.run(cfg, inputs, {**outputs, "out": tmp_path / "b6"})
    assert m["model"] == "ppocrv6_small_int8" and m["candidates"]["ppocrv6_small_int8"]["dev_accuracy"] == 0.98
    assert (tmp_path / "b6" / "app.elf").read_bytes() == b"\x7fELFv6int8"
    OmegaConf.update(cfg, "mcu.imported_int8", {}, merge=False)
    assert (tmp_path / "board" / "app.elf").read_bytes() == b"\x7fELFppocrv6_small"
    assert (tmp_path / "zoo.png").read_bytes()[:4] == b"\x89PNG"
    # an int8-kernel build named by the board ships from the mcu_int8 stage's folder
    (tmp_path / "mcu" / "crnn_lite_int8.json").write_text(json.dumps({"crnn_lite_int8": _int8(2.6e7, 0.5)}))
    (tmp_path / "elf8" / "crnn_lite").mkdir(parents=True)
    (tmp_path / "elf8" / "crnn_lite" / "app.elf").write_bytes(b"\x7fELFint8")
    OmegaConf.update(cfg, "board.model", "crnn_lite_int8")
    m = board.run(cfg, {**inputs, "mcu": ours + "," + str(tmp_path / "mcu" / "crnn_lite_int8.json")},
                  {**outputs, "out": tmp_path / "b8"})
    assert m["model"] == "crnn_lite_int8" and m["bit_exact"] is True and m["dev_accuracy"] == 0.44
    assert (tmp_path / "b8" / "app.elf").read_bytes() == b"\x7fELFint8"
    with pytest.raises(ConfigError, match="board.model"):
        OmegaConf.update(cfg, "board.model", "crnn")
        board.run(cfg, inputs, {**outputs, "out": tmp_path / "b2"})
    assert not (tmp_path / "b2").exists()


def test_int8_figures_in_another_metric_are_not_mixed_into_the_zoo():
    ev = {"svtr3": {DEV: {"accuracy": 0.468, "accuracy_alnum_ci": 0.905, "ned": 0.6, "n": 10}},
          "crnn_lite": {DEV: {"accuracy": 0.446, "accuracy_alnum_ci": 0.446, "ned": 0.7, "n": 10}}}
    quant = {"svtr3": {"onnx_qdq": {"metric": "accuracy", "sets": {DEV: {"fp32": 0.452, "int8": 0.442}}}},
             "crnn_lite": {"onnx_qdq": {"metric": "accuracy", "sets": {DEV: {"fp32": 0.446, "int8": 0.434}}}}}
    rows = {(r.model, r.variant): r for r in zoo_rows(ev, quant, {}, {}, DEV)}
    assert rows[("svtr3", "fp32")].dev_accuracy == 0.905
    assert rows[("svtr3", "int8 onnx_qdq")].dev_accuracy is None  # exact-case figure, not alnum-ci
    assert rows[("crnn_lite", "int8 onnx_qdq")].dev_accuracy == 0.434  # lowercase alnum charset: the same scale


def test_int8_alnum_ci_record_gives_en_models_a_zoo_figure():
    ev = {"svtr3": {DEV: {"accuracy": 0.468, "accuracy_alnum_ci": 0.905, "ned": 0.6, "n": 10}}}
    ci = {"accuracy_fp32": 0.905, "accuracy_int8": 0.9, "sets": {DEV: {"fp32": 0.905, "int8": 0.9}}}
    quant = {"svtr3": {"onnx_qdq": {"metric": "accuracy", "sets": {DEV: {"fp32": 0.452, "int8": 0.442}},
                                    "accuracy_alnum_ci": ci}}}
    rows = {(r.model, r.variant): r for r in zoo_rows(ev, quant, {}, {}, DEV)}
    assert rows[("svtr3", "int8 onnx_qdq")].dev_accuracy == 0.9  # the alnum-ci record, not the exact-case 0.442
    assert device_accuracy(ev, "svtr3_int8", {"kernels": "int8"}, DEV, quant) == 0.9
