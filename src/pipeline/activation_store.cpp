#include "pipeline/activation_store.h"

#include <algorithm>
#include <cstring>

#include "core/checksum.h"
#include "core/error.h"
#include "io/atomic_output.h"

namespace ar {

ActivationStore::ActivationStore(std::string name, int64_t n, size_t sample_floats)
    : sums_(size_t(n), 0), name_(std::move(name)), n_(n), floats_(sample_floats) {
  AR_CHECK(n > 0 && sample_floats > 0, "activation store ", name_, " of ", n, " x ", sample_floats);
}

void ActivationStore::check_index(int64_t i) const {
  AR_CHECK(i >= 0 && i < n_, name_, ": sample ", i, " of ", n_);
}

void ActivationStore::write(int64_t i, const float* src) {
  check_index(i);
  store(i, src);
  sums_[size_t(i)] = checksum64(src, floats_ * sizeof(float));
}

namespace {

class RamStore final : public ActivationStore {
 public:
  RamStore(const std::string& name, int64_t n, size_t floats)
      : ActivationStore(name, n, floats), buf_(bytes(), name) {}
  void read(int64_t i, float* dst) const override {
    check_index(i);
    std::memcpy(dst, buf_.as<float>() + size_t(i) * sample_floats(), sample_floats() * sizeof(float));
  }
  void persist(const std::filesystem::path& file) override {
    AtomicFile f(file);
    f.write(buf_.data(), buf_.size_bytes());
    f.commit();
  }
  bool on_disk() const override { return false; }
  const float* resident(int64_t i) const override {
    check_index(i);
    return buf_.as<float>() + size_t(i) * sample_floats();
  }

 protected:
  void store(int64_t i, const float* src) override {
    std::memcpy(buf_.as<float>() + size_t(i) * sample_floats(), src, sample_floats() * sizeof(float));
  }

 private:
  Buffer buf_;
};

class FileStore final : public ActivationStore {
 public:
  FileStore(const std::string& name, WorkFile f, int64_t n, size_t floats)
      : ActivationStore(name, n, floats), f_(std::move(f)) {}
  void read(int64_t i, float* dst) const override {
    check_index(i);
    const uint64_t sb = sample_floats() * sizeof(float);
    f_.read_at(uint64_t(i) * sb, dst, sb);
  }
  void persist(const std::filesystem::path& file) override {
    AR_CHECK(std::filesystem::absolute(file) == std::filesystem::absolute(f_.path()), name(),
             ": a file store persists in place, not to ", file.string());
    f_.sync();
    f_.drop_cache(0, f_.size());
  }
  bool on_disk() const override { return true; }
  // For a file whose contents were verified against these sums.
  void adopt_checksums(const std::vector<uint64_t>& s) { sums_ = s; }

 protected:
  void store(int64_t i, const float* src) override {
    const uint64_t sb = sample_floats() * sizeof(float);
    f_.write_at(uint64_t(i) * sb, src, sb);
  }

 private:
  WorkFile f_;
};

}  // namespace

std::unique_ptr<ActivationStore> make_ram_store(const std::string& name, int64_t n, size_t sample_floats) {
  return std::make_unique<RamStore>(name, n, sample_floats);
}

std::unique_ptr<ActivationStore> make_file_store(const std::string& name, const std::filesystem::path& file,
                                                 int64_t n, size_t sample_floats) {
  return std::make_unique<FileStore>(name, WorkFile::create(file, uint64_t(n) * sample_floats * sizeof(float)), n,
                                     sample_floats);
}

std::unique_ptr<ActivationStore> open_checked_store(const std::string& name, const std::filesystem::path& file,
                                                    int64_t n, size_t sample_floats,
                                                    const std::vector<uint64_t>& expected, bool in_ram) {
  AR_CHECK(expected.size() == size_t(n), "checksums for ", expected.size(), " of ", n, " samples");
  WorkFile f = WorkFile::open(file, uint64_t(n) * sample_floats * sizeof(float));
  std::unique_ptr<ActivationStore> s = in_ram ? make_ram_store(name, n, sample_floats) : nullptr;
  std::vector<float> tmp(sample_floats);
  const uint64_t sb = sample_floats * sizeof(float);
  for (int64_t i = 0; i < n; ++i) {
    f.read_at(uint64_t(i) * sb, tmp.data(), sb);
    if (checksum64(tmp.data(), sb) != expected[size_t(i)])
      AR_THROW(file.string(), ": checkpoint cache is corrupted (sample ", i, " does not match its checksum); ",
               "delete the work directory and start again without --resume");
    if (s) s->write(i, tmp.data());
  }
  f.drop_cache(0, f.size());
  if (s) return s;
  auto fs = std::make_unique<FileStore>(name, std::move(f), n, sample_floats);
  fs->adopt_checksums(expected);  // the file holds exactly the checked contents
  return fs;
}

}  // namespace ar
