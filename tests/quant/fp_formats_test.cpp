// FP4 E2M1 / FP8 E4M3 / E8M0 codecs and the MX, NVFP4 and FP8 group quantizers against values
// worked out by hand from the format definitions (quant/fp_formats.h cites them): ties to even,
// subnormals, saturation, the E8M0 exponent clamp, and NaN/Inf refused.
#include "quant/fp_formats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace ar {
namespace {

TEST(FpFormats, E2M1RoundsToNearestEvenAndSaturates) {
  const std::vector<std::pair<float, float>> cases = {
      {0.2f, 0.f},   {0.25f, 0.f},   // tie: 0 (code 000) over 0.5 (001)
      {0.26f, 0.5f}, {0.75f, 1.f},   // tie: 1.0 (010) over 0.5 (001)
      {1.25f, 1.f},  {1.75f, 2.f},   // ties: 1.0 (010) over 1.5; 2.0 (100) over 1.5 (011)
      {2.5f, 2.f},   {3.5f, 4.f},    {5.f, 4.f}, {5.01f, 6.f},
      {6.f, 6.f},    {7.f, 6.f},     {1e30f, 6.f},  // saturation
      {-2.5f, -2.f}, {-0.3f, -0.5f}, {2.9f, 3.f}};
  for (auto [x, want] : cases) EXPECT_EQ(round_e2m1(x), want) << x;
  EXPECT_TRUE(std::signbit(round_e2m1(-0.1f)));  // -0 stays negative zero
}

TEST(FpFormats, E2M1CodesRoundTrip) {
  EXPECT_EQ(encode_e2m1(0.f), 0);
  EXPECT_EQ(encode_e2m1(0.5f), 1);
  EXPECT_EQ(encode_e2m1(1.5f), 3);
  EXPECT_EQ(encode_e2m1(6.f), 7);
  EXPECT_EQ(encode_e2m1(-6.f), 15);
  EXPECT_EQ(encode_e2m1(-0.f), 8);
  for (int c = 0; c < 16; ++c) EXPECT_EQ(encode_e2m1(decode_e2m1(uint8_t(c))), c) << c;
  EXPECT_EQ(decode_e2m1(13), -3.f);
}

TEST(FpFormats, E4M3RoundsToNearestEvenWithSubnormalsAndSaturates) {
  const float s = std::ldexp(1.f, -9);  // smallest subnormal
  const std::vector<std::pair<float, float>> cases = {
      {448.f, 448.f}, {500.f, 448.f}, {1e30f, 448.f},  // saturation (480 would be the NaN code)
      {440.f, 448.f},  // binade 2^8, step 32: 440/32 = 13.75 -> 14
      {432.f, 448.f},  // 13.5: tie to even 14
      {400.f, 384.f},  // 12.5: tie to even 12
      {1.0625f, 1.f},  // 1 + 1/16: tie between 1.0 (m 0) and 1.125 (m 1)
      {1.1875f, 1.25f},  // 1 + 3/16: tie between 1.125 (m 1) and 1.25 (m 2)
      {s, s},          {s / 2, 0.f},  // tie to even: 0
      {1.5f * s, 2 * s},  // tie between 1 and 2 subnormal steps: 2
      {0.015625f, 0.015625f},  // smallest normal 2^-6
      {0.013671875f, 0.013671875f},  // largest subnormal 7 * 2^-9
      {0.0146484375f, 0.015625f},    // 7.5 * 2^-9: tie between 7 (odd) and 8 (= 2^-6) steps
      {-3.3f, -3.25f}};  // binade 2^1, step 0.25
  for (auto [x, want] : cases) EXPECT_EQ(round_e4m3(x), want) << x;
}

TEST(FpFormats, E4M3CodesRoundTrip) {
  EXPECT_EQ(encode_e4m3(448.f), 0x7e);
  EXPECT_EQ(encode_e4m3(-448.f), 0xfe);
  EXPECT_EQ(encode_e4m3(1.f), 0x38);  // exponent field 7
  EXPECT_EQ(encode_e4m3(-2.f), 0xc0);
  EXPECT_EQ(encode_e4m3(std::ldexp(1.f, -9)), 0x01);
  EXPECT_EQ(encode_e4m3(0.015625f), 0x08);
  EXPECT_EQ(encode_e4m3(224.f), 0x76);  // 1.75 * 2^7
  EXPECT_TRUE(std::isnan(decode_e4m3(0x7f)));
  EXPECT_TRUE(std::isnan(decode_e4m3(0xff)));
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(encode_e4m3(decode_e4m3(uint8_t(c))), c) << c;
  }
}

TEST(FpFormats, E8M0) {
  EXPECT_EQ(decode_e8m0(127), 1.f);
  EXPECT_EQ(decode_e8m0(130), 8.f);
  EXPECT_EQ(decode_e8m0(0), std::ldexp(1.f, -127));
  EXPECT_EQ(decode_e8m0(254), std::ldexp(1.f, 127));
  EXPECT_TRUE(std::isnan(decode_e8m0(255)));
}

TEST(FpFormats, MxScaleExponentEdges) {
  EXPECT_EQ(mx_scale_code(6.f, MxElem::FP4), 127);     // floor(log2 6) = 2 = emax: scale 1
  EXPECT_EQ(mx_scale_code(7.99f, MxElem::FP4), 127);   // still binade 2 (7.99 then saturates to 6)
  EXPECT_EQ(mx_scale_code(8.f, MxElem::FP4), 128);     // binade 3: scale 2
  EXPECT_EQ(mx_scale_code(4.f, MxElem::FP4), 127);
  EXPECT_EQ(mx_scale_code(3.99f, MxElem::FP4), 126);   // exact floor(log2): 1, scale 1/2
  EXPECT_EQ(mx_scale_code(448.f, MxElem::FP8), 127);   // emax 8
  EXPECT_EQ(mx_scale_code(0.f, MxElem::FP4), 126);     // all-zero block: 2^(1 - 2), as AutoRound
  EXPECT_EQ(mx_scale_code(0.f, MxElem::FP8), 120);     // 2^(1 - 8)
  EXPECT_EQ(mx_scale_code(std::ldexp(1.f, -130), MxElem::FP4), 0);  // -132 clamped to -127
  EXPECT_EQ(mx_scale_code(3e38f, MxElem::FP4), 252);   // floor(log2 3e38) = 127; 127 - 2
  EXPECT_EQ(mx_scale_code(3e38f, MxElem::FP8), 246);
}

TEST(FpFormats, MxFp4Block) {
  const float x[] = {0.3f, -1.2f, 2.6f, 5.9f, 0.f, -7.5f};
  uint8_t codes[6];
  // amax 7.5: scale 2^0; 0.3 -> 0.5, -1.2 -> -1, 2.6 -> 3, 5.9 -> 6, -7.5 saturates to -6
  EXPECT_EQ(mx_quantize_block(codes, x, nullptr, 6, MxElem::FP4), 127);
  EXPECT_EQ(std::vector<uint8_t>(codes, codes + 6), (std::vector<uint8_t>{1, 10, 5, 7, 0, 15}));
  float out[6];
  mx_dequantize_block(out, codes, 6, 127, MxElem::FP4);
  EXPECT_EQ(std::vector<float>(out, out + 6), (std::vector<float>{0.5f, -1.f, 3.f, 6.f, 0.f, -6.f}));
  // max_scale 0.5 clips amax to 3.75: scale 2^-1, x / scale = 0.6, -2.4, 5.2, 11.8, 0, -15
  EXPECT_EQ(mx_quantize_block(codes, x, nullptr, 6, MxElem::FP4, 0.5f), 126);
  mx_dequantize_block(out, codes, 6, 126, MxElem::FP4);
  EXPECT_EQ(std::vector<float>(out, out + 6), (std::vector<float>{0.25f, -1.f, 3.f, 3.f, 0.f, -3.f}));
  // v moves the rounding: 0.3 + 0.3 = 0.6 -> 0.5; -1.2 + 0.45 = -0.75 -> tie -> -1
  const float v[] = {0.3f, 0.45f, -0.6f, 0.f, 0.26f, 0.f};
  mx_quantize_block(codes, x, v, 6, MxElem::FP4);
  mx_dequantize_block(out, codes, 6, 127, MxElem::FP4);
  EXPECT_EQ(std::vector<float>(out, out + 6), (std::vector<float>{0.5f, -1.f, 2.f, 6.f, 0.5f, -6.f}));
}

TEST(FpFormats, MxFp8Block) {
  const float x[] = {1000.f, -3.3f, 0.01f, 600.f};
  uint8_t codes[4];
  // amax 1000: floor(log2) = 9, scale 2^(9-8); x / 2: 500 saturates to 448; -1.65 -> -1.625 (step
  // 1/8); 0.005 is subnormal: 0.005 / 2^-9 = 2.56 -> 3 * 2^-9; 300 -> 288 (step 32)
  EXPECT_EQ(mx_quantize_block(codes, x, nullptr, 4, MxElem::FP8), 128);
  float out[4];
  mx_dequantize_block(out, codes, 4, 128, MxElem::FP8);
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{896.f, -3.25f, 6 * std::ldexp(1.f, -9), 576.f}));
}

TEST(FpFormats, Nvfp4Block) {
  // gs = 448: a block with amax 3 gets scale e4m3(448 * 3/6) = 224 (code 0x76) and multiplier
  // 1 / (224 / 448) = 2: 3 -> 6, -1.3 -> -2.6 -> -3, 0.1 -> 0.2 -> 0, 2.2 -> 4.4 -> 4.
  const float x[] = {3.f, -1.3f, 0.1f, 2.2f};
  uint8_t codes[4];
  EXPECT_EQ(nvfp4_quantize_block(codes, x, nullptr, 4, 448.f), 0x76);
  EXPECT_EQ(std::vector<uint8_t>(codes, codes + 4), (std::vector<uint8_t>{7, 13, 0, 6}));
  float out[4];
  nvfp4_dequantize_block(out, codes, 4, 0x76, 448.f);
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{3.f, -1.5f, 0.f, 2.f}));
  // A block far below the tensor's amax: its scale underflows E4M3 to 0, and so does the block.
  const float tiny[] = {1e-6f, -5e-7f};
  EXPECT_EQ(nvfp4_quantize_block(codes, tiny, nullptr, 2, 448.f), 0);
  nvfp4_dequantize_block(out, codes, 2, 0, 448.f);
  EXPECT_EQ(out[0], 0.f);
  EXPECT_EQ(out[1], 0.f);
  EXPECT_EQ(nvfp4_global_scale(0.f), 0.f);
  EXPECT_FLOAT_EQ(nvfp4_global_scale(6.f), 448.f);
}

TEST(FpFormats, Fp8Scale) {
  EXPECT_EQ(fp8_scale(896.f), 2.f);
  EXPECT_EQ(fp8_scale(896.f, 0.5f), 1.f);
  EXPECT_EQ(fp8_scale(0.f), float(1.0 / (448.0 * 512.0)));  // vLLM's floor
  const float x[] = {300.f, -0.7f, 1e-3f};
  uint8_t codes[3];
  fp8_quantize(codes, x, nullptr, 3, 1.f);
  float out[3];
  fp8_dequantize(out, codes, 3, 1.f);
  // 300 -> 288 (step 32); -0.7 -> -0.6875 (binade 2^-1, step 1/16: 11.2 -> 11); 1e-3 -> 2^-9 (0.512 -> 1)
  EXPECT_EQ(std::vector<float>(out, out + 3), (std::vector<float>{288.f, -0.6875f, std::ldexp(1.f, -9)}));
}

TEST(FpFormats, NonFiniteWeightsAreRefusedByName) {
  const float ok[] = {1.f, -2.f};
  EXPECT_NO_THROW(check_finite(ok, 2, "w"));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    const float x[] = {1.f, bad};
    try {
      check_finite(x, 2, "model.layers.0.mlp.up_proj.weight");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("index 1"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ar
