// Scheme names, the --scheme presets (AutoRound's auto_round/schemes.py PRESET_SCHEMES, weight side
// only) and the merge of --layer_config fields over a default scheme.
#include "quant/scheme.h"

#include <cctype>

#include "core/error.h"

namespace ar {

namespace {

constexpr QuantScheme int_scheme(int bits, int64_t group) { return QuantScheme{bits, group, true}; }
constexpr QuantScheme fp(DataType t, int bits, int64_t group) {
  return QuantScheme{bits, group, true, GgmlType::F32, t};
}

// Activations stay 16-bit in every preset: AutoRound's MXFP4 / NVFP4 / FP8_BLOCK presets also set
// act_bits, which the runtime applies when it loads such a checkpoint; the weights are the same.
constexpr SchemePreset kPresets[] = {
    {"W2A16", int_scheme(2, 128)},
    {"W3A16", int_scheme(3, 128)},
    {"W4A16", int_scheme(4, 128)},
    {"W8A16", int_scheme(8, 128)},
    {"MXFP4", fp(DataType::MXFP4, 4, 32)},
    {"MXFP8", fp(DataType::MXFP8, 8, 32)},
    {"NVFP4", fp(DataType::NVFP4, 4, 16)},
    {"FP8", fp(DataType::FP8, 8, -1)},
    {"FP8_BLOCK", fp(DataType::FP8Block, 8, kFp8BlockSize)},
};

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = char(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

// "W<b>A16" or "W<b>A16G<g>" (one bits digit, as AutoRound's names): nullopt when `u` has another
// shape; ar::Error for a group that is not a positive number of at most 9 digits.
std::optional<QuantScheme> parse_int_name(const std::string& u, std::string_view given) {
  if (u.size() < 5 || u[0] != 'W' || !std::isdigit(static_cast<unsigned char>(u[1])) || u.compare(2, 3, "A16") != 0)
    return std::nullopt;
  QuantScheme s = int_scheme(u[1] - '0', 128);
  if (u.size() == 5) return s;
  if (u[5] != 'G') return std::nullopt;
  const std::string digits = u.substr(6);
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
    AR_THROW("scheme '", given, "': the group size after G must be a positive number (W4A16G32, W2A16G64)");
  s.group_size = std::stoll(digits);
  if (s.group_size == 0) AR_THROW("scheme '", given, "': group size 0; use a positive size");
  return s;
}

TypeFamily family_of(DataType t) {
  switch (t) {
    case DataType::Int: return TypeFamily::Int;
    case DataType::MXFP4:
    case DataType::MXFP8: return TypeFamily::MxFp;
    case DataType::NVFP4: return TypeFamily::NvFp;
    case DataType::FP8:
    case DataType::FP8Block: return TypeFamily::Fp;
  }
  return TypeFamily::Int;
}

const char* family_name(TypeFamily f) {
  switch (f) {
    case TypeFamily::Int: return "int";
    case TypeFamily::MxFp: return "mx_fp";
    case TypeFamily::NvFp: return "nv_fp";
    case TypeFamily::Fp: return "fp";
  }
  return "?";
}

}  // namespace

QuantScheme fp_scheme(DataType t) {
  for (const SchemePreset& p : kPresets)
    if (p.scheme.data_type == t && t != DataType::Int) return p.scheme;
  AR_CHECK(false, "fp_scheme of the integer type");
  return {};
}

const char* data_type_name(DataType t) {
  switch (t) {
    case DataType::Int: return "int";
    case DataType::MXFP4: return "MXFP4";
    case DataType::MXFP8: return "MXFP8";
    case DataType::NVFP4: return "NVFP4";
    case DataType::FP8: return "FP8";
    case DataType::FP8Block: return "FP8_BLOCK";
  }
  return "?";
}

const char* autoround_data_type(DataType t) { return family_name(family_of(t)); }

std::string scheme_label(const QuantScheme& s) {
  if (!s.quantized()) return "16-bit";
  if (s.gguf_target()) return std::string(ggml_info(s.gguf).name);
  if (s.is_fp()) return data_type_name(s.data_type);
  return cat("W", s.bits, "G", s.group_size, s.sym ? " sym" : " asym");
}

std::span<const SchemePreset> scheme_presets() { return kPresets; }

std::string scheme_names_help() {
  std::string s;
  for (const SchemePreset& p : kPresets) s += cat(s.empty() ? "" : ", ", p.name);
  return s + ", W<bits>A16G<group>";
}

QuantScheme resolve_scheme(std::string_view name, const SchemeOverrides& given) {
  const std::string u = upper(name);
  std::optional<QuantScheme> s;
  for (const SchemePreset& p : kPresets)
    if (p.name == u) s = p.scheme;
  if (!s) s = parse_int_name(u, name);
  if (!s)
    AR_THROW("scheme '", name, "' is not one of ", scheme_names_help(),
             u.starts_with("W") && u.find("A16") == std::string::npos
                 ? " (weight-only schemes: activations stay 16-bit, W<bits>A16)"
                 : "");
  if (!s->is_fp()) {
    if (s->bits != 2 && s->bits != 3 && s->bits != 4 && s->bits != 8)
      AR_THROW("scheme '", name, "': ", s->bits, "-bit weights are not supported (2, 3, 4, 8)");
    s->bits = given.bits.value_or(s->bits);
    s->group_size = given.group_size.value_or(s->group_size);
    s->sym = given.sym.value_or(s->sym);
    return *s;
  }
  const char* n = data_type_name(s->data_type);
  if (given.bits && *given.bits != s->bits)
    AR_THROW("scheme ", n, " stores ", s->bits, "-bit weights; bits ", *given.bits,
             " contradicts it (leave bits unset, or pick another scheme", s->data_type == DataType::MXFP4 ? ": MXFP8" : "",
             ")");
  if (given.group_size && *given.group_size != s->group_size)
    AR_THROW("scheme ", n, " fixes the group size at ", s->group_size,
             s->data_type == DataType::FP8Block ? " x 128" : s->data_type == DataType::FP8 ? " (per channel)" : "",
             "; group_size ", *given.group_size, " contradicts it (leave group_size unset)");
  if (given.sym && !*given.sym)
    AR_THROW("scheme ", n, " is a symmetric floating-point format; asymmetric quantization does not apply");
  return *s;
}

// ---- --layer_config --------------------------------------------------------------------------------

std::optional<ParsedDataType> parse_autoround_data_type(std::string_view s) {
  struct Name {
    std::string_view name;
    TypeFamily family;
    int bits;  // 0: none implied
  };
  static constexpr Name kNames[] = {
      {"int", TypeFamily::Int, 0},       {"float", TypeFamily::Int, 16},
      {"mx_fp", TypeFamily::MxFp, 0},    {"mx_fp4", TypeFamily::MxFp, 4},    {"mx_fp4e2m1", TypeFamily::MxFp, 4},
      {"mx_fp8", TypeFamily::MxFp, 8},   {"mx_fp8e4m3", TypeFamily::MxFp, 8}, {"nv_fp", TypeFamily::NvFp, 0},
      {"nv_fp4", TypeFamily::NvFp, 4},   {"fp", TypeFamily::Fp, 0},          {"fp8", TypeFamily::Fp, 8},
      {"fp8_e4m3", TypeFamily::Fp, 8},   {"fp8_sym", TypeFamily::Fp, 8},
  };
  for (const Name& n : kNames)
    if (n.name == s) return ParsedDataType{n.family, n.bits ? std::optional<int>(n.bits) : std::nullopt};
  return std::nullopt;
}

SchemeFields preset_fields(const QuantScheme& p) {
  SchemeFields f;
  f.bits = p.bits;
  f.group_size = p.group_size;
  f.sym = p.sym;
  f.family = family_of(p.data_type);
  f.block_2d = p.data_type == DataType::FP8Block;
  return f;
}

void check_scheme_fields(const SchemeFields& f, const std::string& where) {
  const bool keep = f.bits == 16;
  if (f.block_2d.value_or(false) && f.family && *f.family != TypeFamily::Fp)
    AR_THROW(where, ": group_size [128, 128] (2-D blocks) is for data_type fp (FP8_BLOCK), not ",
             family_name(*f.family));
  if (!f.family || *f.family == TypeFamily::Int || keep) return;
  const TypeFamily fam = *f.family;
  const char* name = family_name(fam);
  if (f.bits) {
    const bool ok = fam == TypeFamily::MxFp ? (*f.bits == 4 || *f.bits == 8) : fam == TypeFamily::NvFp ? *f.bits == 4
                                                                                                        : *f.bits == 8;
    if (!ok)
      AR_THROW(where, ": data_type ", name, " with ", *f.bits, " bits; it takes ",
               fam == TypeFamily::MxFp ? "4 (MXFP4) or 8 (MXFP8)" : fam == TypeFamily::NvFp ? "4 (NVFP4)" : "8 (FP8)",
               " bits, or 16 to keep the layer");
  }
  if (f.sym == false) AR_THROW(where, ": data_type ", name, " is symmetric; 'sym': false does not apply");
  if (f.group_size && !f.block_2d.value_or(false)) {
    const int64_t want = fam == TypeFamily::MxFp ? 32 : fam == TypeFamily::NvFp ? 16 : -1;
    if (*f.group_size != want)
      AR_THROW(where, ": data_type ", name, " fixes the group size at ", want,
               fam == TypeFamily::Fp ? " (per channel), or [128, 128] for 128 x 128 blocks" : "", "; got ",
               *f.group_size);
  }
}

QuantScheme resolve_scheme_fields(const QuantScheme& d, const SchemeFields& f, const std::string& where) {
  // The fields against the family they end up in, also when it comes from the defaults
  // ({"bits": 8} over NVFP4 is refused, not ignored).
  const TypeFamily fam = f.family.value_or(family_of(d.data_type));
  SchemeFields checked = f;
  checked.family = fam;
  check_scheme_fields(checked, f.family ? where : cat(where, " (data type of the default scheme ",
                                                      data_type_name(d.data_type), ")"));
  // Kept (bits 16) and integer layers take the defaults' other values; from an FP default those are
  // the format's (MXFP4: 4 bits, group 32), which carry over as AutoRound's scheme fields do.
  QuantScheme s = d;
  s.bits = f.bits.value_or(d.bits);
  s.group_size = f.group_size.value_or(d.group_size);
  s.sym = f.sym.value_or(d.sym);
  s.data_type = DataType::Int;
  if (s.bits == 16) return s;
  switch (fam) {
    case TypeFamily::Int:
      if (f.block_2d.value_or(false)) break;
      return s;
    case TypeFamily::MxFp: {
      const int bits = f.bits.value_or(d.bits);
      if (bits != 4 && bits != 8)
        AR_THROW(where, ": data_type mx_fp takes 4 or 8 bits, and the layer's scheme has ", bits,
                 "; set \"bits\": 4 (MXFP4) or 8 (MXFP8) in the rule");
      return fp_scheme(bits == 4 ? DataType::MXFP4 : DataType::MXFP8);
    }
    case TypeFamily::NvFp: return fp_scheme(DataType::NVFP4);
    case TypeFamily::Fp: {
      if (f.block_2d) return fp_scheme(*f.block_2d ? DataType::FP8Block : DataType::FP8);
      if (f.group_size) return fp_scheme(DataType::FP8);  // -1, checked above
      return fp_scheme(d.data_type == DataType::FP8Block ? DataType::FP8Block : DataType::FP8);
    }
  }
  AR_THROW(where, ": group_size [128, 128] (2-D blocks) is for data_type fp (FP8_BLOCK)");
}

}  // namespace ar
