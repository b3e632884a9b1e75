/* The few declarations that TVM's `c` target kernels need from TVM-FFI and DLPack, written for the wordrec
 * MCU runner so no TVM runtime is linked. Layouts follow DLPack (DLTensor/DLDevice/DLDataType) and TVM-FFI's
 * TVMFFIAny (type index, padding, 8-byte value); the kernels and runner.c are always compiled together against
 * this header, so it only has to be self-consistent with them.
 */
#ifndef WORDREC_TVM_ABI_H
#define WORDREC_TVM_ABI_H
#include <stddef.h>
#include <stdint.h>

#define TVM_DLL

typedef enum { kDLCPU = 1 } DLDeviceType;
typedef struct { int32_t device_type; int32_t device_id; } DLDevice;
typedef enum { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBool = 6 } DLDataTypeCode;
typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } DLDataType;
typedef struct {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
} DLTensor;

typedef struct {
  int32_t type_index;
  uint32_t zero_padding;
  union {
    int64_t v_int64;
    double v_float64;
    void* v_ptr;
  };
} TVMFFIAny;

void TVMFFIErrorSetRaisedFromCStrParts(const char* kind, const char** parts, int32_t n);
#endif
