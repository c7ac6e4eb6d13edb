// The --scheme presets (AutoRound's names), their precedence rules against explicit --bits /
// --group_size / --asym, malformed names, labels, and AutoRound's data_type strings.
#include "quant/scheme.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace ar {
namespace {

QuantScheme int_scheme(int bits, int64_t group, bool sym = true) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group;
  s.sym = sym;
  return s;
}

std::string error_of(std::string_view name, const SchemeOverrides& o = {}) {
  try {
    resolve_scheme(name, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Scheme, IntegerPresetsAsAutoRoundNamesThem) {
  EXPECT_EQ(resolve_scheme("W4A16"), int_scheme(4, 128));
  EXPECT_EQ(resolve_scheme("w2a16"), int_scheme(2, 128));
  EXPECT_EQ(resolve_scheme("W8A16"), int_scheme(8, 128));
  EXPECT_EQ(resolve_scheme("W2A16G64"), int_scheme(2, 64));
  EXPECT_EQ(resolve_scheme("w4a16g32"), int_scheme(4, 32));
  EXPECT_EQ(resolve_scheme("W3A16G256"), int_scheme(3, 256));
}

TEST(Scheme, FloatingPointPresetsFixBitsAndBlocks) {
  struct Case {
    const char* name;
    DataType t;
    int bits;
    int64_t group;
  };
  for (const Case& c : {Case{"MXFP4", DataType::MXFP4, 4, 32}, Case{"mxfp8", DataType::MXFP8, 8, 32},
                        Case{"NVFP4", DataType::NVFP4, 4, 16}, Case{"FP8", DataType::FP8, 8, -1},
                        Case{"fp8_block", DataType::FP8Block, 8, 128}}) {
    const QuantScheme s = resolve_scheme(c.name);
    EXPECT_EQ(s.data_type, c.t) << c.name;
    EXPECT_EQ(s.bits, c.bits) << c.name;
    EXPECT_EQ(s.group_size, c.group) << c.name;
    EXPECT_TRUE(s.sym) << c.name;
    EXPECT_TRUE(s.quantized()) << c.name;
    EXPECT_EQ(s, fp_scheme(c.t)) << c.name;
  }
}

TEST(Scheme, ExplicitValuesOverrideAnIntegerPreset) {
  EXPECT_EQ(resolve_scheme("W2A16G64", {4, std::nullopt, std::nullopt}), int_scheme(4, 64));
  EXPECT_EQ(resolve_scheme("W4A16", {std::nullopt, 32, false}), int_scheme(4, 32, false));
}

TEST(Scheme, ExplicitValuesMustAgreeWithAFloatingPointFormat) {
  EXPECT_EQ(resolve_scheme("MXFP4", {4, 32, true}), fp_scheme(DataType::MXFP4));  // equal values are fine
  EXPECT_NE(error_of("MXFP4", {8, std::nullopt, std::nullopt}).find("scheme MXFP4 stores 4-bit weights; bits 8"),
            std::string::npos);
  EXPECT_NE(error_of("NVFP4", {std::nullopt, 32, std::nullopt}).find("fixes the group size at 16"), std::string::npos);
  EXPECT_NE(error_of("FP8", {std::nullopt, 128, std::nullopt}).find("at -1 (per channel)"), std::string::npos);
  EXPECT_NE(error_of("FP8_BLOCK", {std::nullopt, 64, std::nullopt}).find("128 x 128"), std::string::npos);
  EXPECT_NE(error_of("MXFP8", {std::nullopt, std::nullopt, false}).find("symmetric"), std::string::npos);
}

TEST(Scheme, MalformedNamesAreRefusedWithTheList) {
  for (const char* bad : {"", "W4", "W4A8", "W4A16X", "W4A16G", "W4A16Gx", "W4A16G-1", "W4A16G32G", "WXA16",
                          "MXFP3", "MXFP", "NVFP8", "INT4", "FP8_STATIC", "gguf:q4_k_m", " W4A16"}) {
    const std::string e = error_of(bad);
    EXPECT_FALSE(e.empty()) << "'" << bad << "' accepted";
    EXPECT_NE(e.find("scheme '"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_NE(error_of("MXFP3").find("MXFP4, MXFP8, NVFP4, FP8, FP8_BLOCK"), std::string::npos);
  EXPECT_NE(error_of("W4A8").find("activations stay 16-bit"), std::string::npos);
  EXPECT_NE(error_of("W4A16G0").find("group size 0"), std::string::npos);
  EXPECT_NE(error_of("W4A16G1234567890").find("positive number"), std::string::npos);  // 10 digits: refused
  EXPECT_NE(error_of("W5A16").find("5-bit weights are not supported"), std::string::npos);
  EXPECT_NE(error_of("W0A16G32").find("0-bit"), std::string::npos);
}

TEST(Scheme, Labels) {
  EXPECT_EQ(scheme_label(int_scheme(4, 128)), "W4G128 sym");
  EXPECT_EQ(scheme_label(int_scheme(2, -1, false)), "W2G-1 asym");
  EXPECT_EQ(scheme_label(int_scheme(16, 128)), "16-bit");
  EXPECT_EQ(scheme_label(fp_scheme(DataType::NVFP4)), "NVFP4");
  EXPECT_EQ(scheme_label(fp_scheme(DataType::FP8Block)), "FP8_BLOCK");
  QuantScheme g = int_scheme(4, 128);
  g.gguf = GgmlType::Q4_K;
  EXPECT_EQ(scheme_label(g), "Q4_K");
  EXPECT_EQ(std::string(autoround_data_type(DataType::MXFP8)), "mx_fp");
  EXPECT_EQ(std::string(autoround_data_type(DataType::NVFP4)), "nv_fp");
  EXPECT_EQ(std::string(autoround_data_type(DataType::FP8Block)), "fp");
  EXPECT_EQ(std::string(autoround_data_type(DataType::Int)), "int");
}

TEST(Scheme, AutoRoundDataTypeStrings) {
  auto is = [](const char* s, TypeFamily f, std::optional<int> bits) {
    const auto t = parse_autoround_data_type(s);
    ASSERT_TRUE(t.has_value()) << s;
    EXPECT_EQ(t->family, f) << s;
    EXPECT_EQ(t->bits, bits) << s;
  };
  is("int", TypeFamily::Int, std::nullopt);
  is("float", TypeFamily::Int, 16);
  is("mx_fp", TypeFamily::MxFp, std::nullopt);
  is("mx_fp4", TypeFamily::MxFp, 4);
  is("mx_fp8e4m3", TypeFamily::MxFp, 8);
  is("nv_fp", TypeFamily::NvFp, std::nullopt);
  is("nv_fp4", TypeFamily::NvFp, 4);
  is("fp", TypeFamily::Fp, std::nullopt);
  is("fp8_e4m3", TypeFamily::Fp, 8);
  for (const char* bad : {"", "INT", "mx_fp6", "mx_fp8e5m2", "fp8_e5m2", "nv_fp4_with_static_gs", "mx_int4", "bf16"})
    EXPECT_FALSE(parse_autoround_data_type(bad).has_value()) << bad;
}

TEST(Scheme, FieldsMergeOverDefaults) {
  SchemeFields f;
  f.family = TypeFamily::Fp;
  EXPECT_EQ(resolve_scheme_fields(int_scheme(4, 128), f, "x"), fp_scheme(DataType::FP8));
  EXPECT_EQ(resolve_scheme_fields(fp_scheme(DataType::FP8Block), f, "x"), fp_scheme(DataType::FP8Block));
  f.block_2d = false;
  f.group_size = -1;
  EXPECT_EQ(resolve_scheme_fields(fp_scheme(DataType::FP8Block), f, "x"), fp_scheme(DataType::FP8));
  SchemeFields keep;
  keep.bits = 16;
  const QuantScheme k = resolve_scheme_fields(fp_scheme(DataType::NVFP4), keep, "x");
  EXPECT_FALSE(k.quantized());
  EXPECT_FALSE(k.is_fp());
  SchemeFields preset = preset_fields(fp_scheme(DataType::FP8Block));
  EXPECT_EQ(resolve_scheme_fields(int_scheme(2, 64), preset, "x"), fp_scheme(DataType::FP8Block));
  preset = preset_fields(int_scheme(8, 128));
  EXPECT_EQ(resolve_scheme_fields(fp_scheme(DataType::MXFP4), preset, "x"), int_scheme(8, 128));
}

}  // namespace
}  // namespace ar
