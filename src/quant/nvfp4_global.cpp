#include "quant/nvfp4_global.h"

#include <algorithm>
#include <map>
#include <string_view>

#include "core/error.h"

namespace ar {

namespace {

// The fusion group key of a linear: its parent module plus the group's first member, or "" when
// its last name component is in no group.
std::string group_key(const std::string& name) {
  const size_t dot = name.rfind('.');
  const std::string_view leaf = dot == std::string::npos ? std::string_view(name) : std::string_view(name).substr(dot + 1);
  const std::string parent = dot == std::string::npos ? std::string() : name.substr(0, dot);
  if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj") return parent + ".qkv";
  if (leaf == "gate_proj" || leaf == "up_proj") return parent + ".gate_up";
  if (leaf == "w1" || leaf == "w3") return parent + ".w13";
  return {};
}

}  // namespace

std::vector<float> nvfp4_global_amax(const std::vector<std::string>& names, const std::vector<float>& amax,
                                     const std::vector<bool>& nvfp4, bool fused) {
  AR_CHECK(names.size() == amax.size() && names.size() == nvfp4.size(), "nvfp4_global_amax: ", names.size(),
           " names, ", amax.size(), " amax, ", nvfp4.size(), " flags");
  std::vector<float> r = amax;
  if (!fused) return r;
  std::map<std::string, float> group_max;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!nvfp4[i]) continue;
    const std::string k = group_key(names[i]);
    if (k.empty()) continue;
    float& m = group_max[k];  // 0 when new; amax >= 0
    m = std::max(m, amax[i]);
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (!nvfp4[i]) continue;
    const auto it = group_max.find(group_key(names[i]));
    if (it != group_max.end()) r[i] = it->second;
  }
  return r;
}

}  // namespace ar
