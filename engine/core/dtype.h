// Storage dtypes (the safetensors set) and fast f16/bf16 <-> f32 conversion.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8,
    DT_U16, DT_U32, DT_U64, DT_BOOL, DT_F8_E4M3, DT_F8_E5M2, DT_COUNT
} dtype;

const char *dtype_name(dtype dt);          // safetensors spelling: "F32", "BF16", ...
int dtype_from_name(const char *name);     // -1 when unknown
size_t dtype_size(dtype dt);               // bytes per element
int dtype_is_float(dtype dt);              // F32/F16/BF16/F64: convertible to f32

// Scalar conversions (IEEE round-to-nearest-even, NaN stays NaN, overflow -> inf).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

// Bulk conversions; use F16C / AVX-512 when the CPU has them, else the scalar path.
void f16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void f32_to_f16_n(uint16_t *dst, const float *src, size_t n);
void bf16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);

// Any float or integer dtype to f32 (src may be unaligned). Returns -1 for dtypes
// that have no f32 meaning here (bool, f8).
int dtype_to_f32_n(float *dst, const void *src, dtype dt, size_t n);
// f32 to F32/F16/BF16.
int dtype_from_f32_n(void *dst, dtype dt, const float *src, size_t n);
