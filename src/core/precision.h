// Matrix-product precision, chosen per run and passed down to every kernel that multiplies.
#pragma once

namespace ar {

// F32: plain fp32. BF16: inputs rounded to bf16 (round to nearest even), products accumulated in
// fp32 — what a bf16 matmul with f32 output does. On CPUs without a oneDNN bf16 matmul the inputs
// are rounded into f32 copies instead (bf16×bf16 is exact in f32, so the products are the same).
enum class Precision { F32, BF16 };

}  // namespace ar
