#include "core/comm.h"

namespace ar {

namespace {

class SingleProcess final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum_ordered(float*, size_t) override {}
  void sum_ordered(double*, size_t) override {}
  void chain(std::vector<double>& acc, const std::function<void(std::vector<double>&)>& add) override { add(acc); }
  int64_t min(int64_t v) override { return v; }
  int64_t max(int64_t v) override { return v; }
  void broadcast(std::string&) override {}
  void barrier() override {}
};

}  // namespace

Comm& single_process_comm() {
  static SingleProcess c;
  return c;
}

}  // namespace ar
