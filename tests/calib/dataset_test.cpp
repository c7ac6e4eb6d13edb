#include "calib/dataset.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/file.h"
#include "support/fixtures.h"

namespace ar {
namespace {

std::filesystem::path write(const std::filesystem::path& dir, const std::string& name, const std::string& body) {
  auto p = dir / name;
  std::ofstream(p, std::ios::binary) << body;
  return p;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Dataset, TokenIdFilesFlatAndNested) {
  auto dir = test::make_temp_dir("dataset");
  auto flat = read_token_id_file(write(dir, "a.json", " [1, 2, 3]"));
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_EQ(flat[0], (std::vector<int32_t>{1, 2, 3}));
  auto nested = read_token_id_file(write(dir, "b.json", "[[1,2],[3,4,5]]"));
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested[1], (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(detect_dataset_kind(dir / "a.json"), DatasetKind::TokenIds);
}

TEST(Dataset, MalformedTokenIdFiles) {
  auto dir = test::make_temp_dir("dataset-bad");
  struct Case { const char* body; const char* expect; };
  const Case cases[] = {
      {"[1, 2,", "invalid JSON"},
      {"[1, -5]", "position 1: -5 is not a token id"},
      {"[1, 2.5]", "is not a token id"},
      {"[[1, 2], 3]", "element 1 is not a list"},
      {"[1, \"x\"]", "is not a token id"},
  };
  for (const Case& c : cases) {
    auto p = write(dir, "bad.json", c.body);
    std::string err = error_of([&] { read_token_id_file(p); });
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.body << " -> '" << err << "'";
    EXPECT_NE(err.find("bad.json"), std::string::npos) << err;
  }
  EXPECT_NE(error_of([&] { read_text_file(dir / "missing.txt"); }).find("missing.txt: cannot open"), std::string::npos);
}

TEST(Dataset, JsonLines) {
  auto dir = test::make_temp_dir("dataset-jsonl");
  auto p = write(dir, "c.jsonl", "{\"text\": \"hello\"}\n\n{\"text\": \"world\", \"id\": 3}\n");
  EXPECT_EQ(read_jsonl_texts(p), (std::vector<std::string>{"hello", "world"}));
  EXPECT_EQ(detect_dataset_kind(p), DatasetKind::JsonLines);
  auto bad = write(dir, "d.jsonl", "{\"text\": \"ok\"}\n{\"content\": \"x\"}\n");
  std::string err = error_of([&] { read_jsonl_texts(bad); });
  EXPECT_NE(err.find("d.jsonl:2: no string field \"text\""), std::string::npos) << err;
}

TEST(Dataset, WindowsDropTheRemainder) {
  std::vector<std::vector<int32_t>> docs = {{0, 1, 2, 3, 4, 5, 6}, {7, 8}};
  auto w = cut_windows(docs, 3);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(w[1], (std::vector<int32_t>{3, 4, 5}));
  EXPECT_TRUE(cut_windows({{1, 2}}, 3).empty());
}

// Ids beyond int32 (and unsigned values that would wrap to negative int64) are refused, not wrapped.
TEST(Dataset, TokenIdsOutsideInt32AreRefusedNotWrapped) {
  auto dir = test::make_temp_dir("dataset-range");
  for (const char* body : {"[2147483648]", "[18446744073709551615]", "[[1], [9223372036854775807]]", "[1e30]"}) {
    auto p = write(dir, "ids.json", body);
    const std::string err = error_of([&] { read_token_id_file(p); });
    EXPECT_NE(err.find("is not a token id"), std::string::npos) << body << " -> '" << err << "'";
    EXPECT_NE(err.find("ids.json"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace ar
