"""Inference: runners (one per runtime: batch NCHW -> probabilities NTK), the Recognizer (preprocess, decode) and
the `wordrec-predict` command."""
