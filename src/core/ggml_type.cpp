#include "core/ggml_type.h"

#include <array>
#include <cctype>
#include <string>

#include "core/error.h"

namespace ar {

namespace {

// Block sizes from the ggml block structs: d/dmin are fp16, k-quant super-blocks hold 256 weights.
constexpr std::array<GgmlTypeInfo, 13> kTypes = {{
    {GgmlType::F32, "F32", 1, 4},
    {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 2 + 16},
    {GgmlType::Q4_1, "Q4_1", 32, 2 + 2 + 16},
    {GgmlType::Q5_0, "Q5_0", 32, 2 + 4 + 16},
    {GgmlType::Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16},
    {GgmlType::Q8_0, "Q8_0", 32, 2 + 32},
    {GgmlType::Q2_K, "Q2_K", 256, 16 + 64 + 2 + 2},
    {GgmlType::Q3_K, "Q3_K", 256, 32 + 64 + 12 + 2},
    {GgmlType::Q4_K, "Q4_K", 256, 2 + 2 + 12 + 128},
    {GgmlType::Q5_K, "Q5_K", 256, 2 + 2 + 12 + 32 + 128},
    {GgmlType::Q6_K, "Q6_K", 256, 128 + 64 + 16 + 2},
    {GgmlType::BF16, "BF16", 1, 2},
}};

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id) {
  for (const auto& t : kTypes)
    if (uint32_t(t.type) == id) return t;
  return std::nullopt;
}

const GgmlTypeInfo& ggml_info(GgmlType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i;
  AR_CHECK(false, "ggml_info: unknown GgmlType ", uint32_t(t));
  return kTypes[0];
}

std::optional<GgmlType> parse_ggml_type(std::string_view name) {
  std::string up(name);
  for (char& ch : up) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  for (const auto& t : kTypes)
    if (t.name == up) return t.type;
  return std::nullopt;
}

}  // namespace ar
