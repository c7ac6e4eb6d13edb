// A whole safetensors tensor as f32 values, for tests that compare what a writer stored.
#pragma once
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace ar::test {

inline std::vector<float> read_f32(const SafetensorsReader& st, const std::string& name) {
  const TensorInfo& t = st.require(name);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  st.read_f32(t, v.data());
  return v;
}

}  // namespace ar::test
