// QuantScheme: how one linear layer's weights are quantized. Either AutoRound's integer scheme
// (SPEC §2: bits, group_size, sym), a GGUF block type to tune under, or one of the floating-point
// formats of issue 19 (quant/fp_formats.h cites their definitions), which fix bits, group size and
// symmetry themselves. Also the named presets of `--scheme` (AutoRound's PRESET_SCHEMES names) and
// the fields a --layer_config rule may set, with the rules that merge them over a default scheme.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>
#include <string_view>

#include "core/ggml_type.h"

namespace ar {

// The element format of a quantized weight.
//   Int       integer codes with an fp16 scale (+ zero point) per group (SPEC §2)
//   MXFP4     E2M1 elements, blocks of 32 along a row, E8M0 scale (OCP MX v1.0)
//   MXFP8     E4M3 elements, blocks of 32 along a row, E8M0 scale (OCP MX v1.0)
//   NVFP4     E2M1 elements, blocks of 16 along a row, E4M3 block scale, one f32 global scale
//   FP8       E4M3 elements, one f32 scale per output channel (row)
//   FP8Block  E4M3 elements, one f32 scale per 128 x 128 block of the (out, in) matrix
enum class DataType : uint8_t { Int, MXFP4, MXFP8, NVFP4, FP8, FP8Block };

// FP8Block's block edge along both dimensions (DeepSeek-V3 / vLLM block FP8).
constexpr int64_t kFp8BlockSize = 128;

struct QuantScheme {
  int bits = 4;              // 2, 3, 4, 8; 16 means "keep this layer unquantized"
  int64_t group_size = 128;  // -1 = the whole input row is one group
  bool sym = true;
  // A GGUF block format (Q4_K, ...) to tune and quantize under instead of the integer scheme above
  // (bits/group_size/sym are then unused); F32 = none.
  GgmlType gguf = GgmlType::F32;
  // A floating-point format: bits, group_size (the block length along a row; 128 for FP8Block, whose
  // blocks also span 128 rows) and sym are then the format's own, as fp_scheme() gives them, so
  // that code reading bits or group_size sees true values and operator== stays exact.
  DataType data_type = DataType::Int;

  bool operator==(const QuantScheme&) const = default;
  bool quantized() const { return gguf_target() || bits < 16; }
  bool gguf_target() const { return ggml_is_quantized(gguf); }
  bool is_fp() const { return data_type != DataType::Int; }
};

// One scheme per linear of a block, in block_linears() order (model/weights.h).
using LinearSchemes = std::vector<QuantScheme>;

// The scheme of a floating-point format with its fixed bits / group size / symmetry. t != Int.
QuantScheme fp_scheme(DataType t);
// "int", "MXFP4", "MXFP8", "NVFP4", "FP8", "FP8_BLOCK" (the --scheme names).
const char* data_type_name(DataType t);
// AutoRound's data_type string for configs: "int", "mx_fp", "nv_fp" or "fp".
const char* autoround_data_type(DataType t);
// For logs and messages: "W4G128 sym", "W4G-1 asym", "MXFP4", "FP8_BLOCK", "16-bit".
std::string scheme_label(const QuantScheme& s);

// ---- --scheme -----------------------------------------------------------------------------------
struct SchemePreset {
  std::string_view name;
  QuantScheme scheme;
};
// The named presets: W2A16 W3A16 W4A16 W8A16 (group 128, symmetric), MXFP4 MXFP8 NVFP4 FP8
// FP8_BLOCK. Also accepted by resolve_scheme: W<b>A16G<g>, as AutoRound's W4A16G32 etc.
std::span<const SchemePreset> scheme_presets();
// "W2A16, W3A16, ..., FP8_BLOCK, W<bits>A16G<group>" for --help and errors.
std::string scheme_names_help();

// What the user gave next to a preset (--bits, --group_size, --asym/--sym).
struct SchemeOverrides {
  std::optional<int> bits;
  std::optional<int64_t> group_size;
  std::optional<bool> sym;
};
// The scheme `name` (case-insensitive) names. For an integer preset, overrides win over the
// preset's values (AutoRound's rule: explicit arguments override the scheme). A floating-point
// format fixes bits, group size and symmetry: an override with another value is an ar::Error
// (an equal one is accepted). Unknown or malformed names: ar::Error listing the valid ones.
QuantScheme resolve_scheme(std::string_view name, const SchemeOverrides& given = {});

// ---- --layer_config rules --------------------------------------------------------------------------
// AutoRound's data_type families: "int"; "mx_fp" (4 or 8 bits); "nv_fp" (4 bits); "fp" (8 bits: FP8
// per channel, or per 128 x 128 block with group_size [128, 128]).
enum class TypeFamily : uint8_t { Int, MxFp, NvFp, Fp };

// The fields a rule may set; unset ones come from the defaults (or an earlier, weaker rule).
struct SchemeFields {
  std::optional<int> bits;
  std::optional<int64_t> group_size;
  std::optional<bool> sym;
  std::optional<TypeFamily> family;
  std::optional<bool> block_2d;  // group_size given as [128, 128]
};

// An AutoRound data_type string -> (family, bits it implies, if any): "int", "mx_fp", "mx_fp4",
// "mx_fp4e2m1", "mx_fp8", "mx_fp8e4m3", "nv_fp", "nv_fp4", "fp", "fp8", "fp8_e4m3", "fp8_sym",
// "float" (the family Int with 16 bits: keep the layer, as AutoRound writes for kept layers).
// nullopt for anything else.
struct ParsedDataType {
  TypeFamily family;
  std::optional<int> bits;
};
std::optional<ParsedDataType> parse_autoround_data_type(std::string_view s);

// The fields a preset sets (all of them).
SchemeFields preset_fields(const QuantScheme& preset);

// ar::Error naming `where` when the fields set contradict each other (mx_fp with 2 bits, nv_fp with
// group_size 64, an FP family with sym false, a [128, 128] block that is not fp 8-bit, ...).
void check_scheme_fields(const SchemeFields& f, const std::string& where);

// `f` over `defaults`. bits 16 keeps the layer (an Int scheme with bits 16). For an FP family the
// format fixes group size and symmetry (values inherited from an integer default do not apply);
// nv_fp / fp take their one width when no rule set bits; mx_fp takes the bits set or inherited
// (4 or 8). Contradictions: ar::Error naming `where`.
QuantScheme resolve_scheme_fields(const QuantScheme& defaults, const SchemeFields& f, const std::string& where);

}  // namespace ar
