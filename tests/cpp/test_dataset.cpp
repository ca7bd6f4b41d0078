#include <gtest/gtest.h>

#include "test_util.h"
#include "vimvq/data/dataset.h"
#include "vimvq/util/error.h"

using namespace vimvq;
using vimvq::test::TempDir;
using vimvq::test::write_file;

TEST(Dataset, ImageFolderSortsClassesAndFiles) {
  TempDir t;
  write_file(t.path() / "b_cat" / "2.png", "x");
  write_file(t.path() / "b_cat" / "1.png", "x");
  write_file(t.path() / "a_dog" / "nested" / "9.jpg", "x");
  write_file(t.path() / "a_dog" / ".hidden.jpg", "x");
  auto ds = data::open_dataset(t.path(), std::nullopt);
  ASSERT_EQ(ds.classes, (std::vector<std::string>{"a_dog", "b_cat"}));
  ASSERT_EQ(ds.samples.size(), 3u);
  EXPECT_EQ(ds.samples[0].label, 0);
  EXPECT_EQ(ds.samples[0].path.filename(), "9.jpg");
  EXPECT_EQ(ds.samples[1].path.filename(), "1.png");
  EXPECT_EQ(ds.samples[2].label, 1);
  EXPECT_TRUE(ds.labelled());
}

TEST(Dataset, UnlabelledNestedFolder) {
  TempDir t;
  write_file(t.path() / "z.png", "x");
  write_file(t.path() / "sub" / "a.png", "x");
  auto ds = data::open_dataset(t.path(), std::nullopt);
  ASSERT_EQ(ds.samples.size(), 2u);
  EXPECT_FALSE(ds.labelled());
  EXPECT_EQ(ds.samples[0].path.filename(), "a.png");
}

TEST(Dataset, IlsvrcGroundTruthIsOneBasedBySortedName) {
  TempDir t;
  write_file(t.path() / "imgs" / "ILSVRC2012_val_00000002.JPEG", "x");
  write_file(t.path() / "imgs" / "ILSVRC2012_val_00000001.JPEG", "x");
  write_file(t.path() / "gt.txt", "490\n361\n");
  auto ds = data::list_with_label_file(t.path() / "imgs", t.path() / "gt.txt", {});
  ASSERT_EQ(ds.samples.size(), 2u);
  EXPECT_EQ(ds.samples[0].path.filename(), "ILSVRC2012_val_00000001.JPEG");
  EXPECT_EQ(ds.samples[0].label, 489);
  EXPECT_EQ(ds.samples[1].label, 360);
}

TEST(Dataset, FileLabelLinesAcceptClassNames) {
  TempDir t;
  write_file(t.path() / "imgs" / "a.png", "x");
  write_file(t.path() / "imgs" / "b.png", "x");
  write_file(t.path() / "labels.txt", "b.png 2\na.png Trouser\n");
  auto ds =
      data::list_with_label_file(t.path() / "imgs", t.path() / "labels.txt", {"T-shirt", "Trouser", "Coat"});
  ASSERT_EQ(ds.samples.size(), 2u);
  EXPECT_EQ(ds.samples[0].label, 1);
  EXPECT_EQ(ds.samples[1].label, 2);
}

TEST(Dataset, ErrorsNameTheFolderOrFile) {
  TempDir t;
  auto message = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] {
              data::open_dataset(t.path() / "missing", std::nullopt);
            }).find("missing: no such folder"),
            std::string::npos);
  EXPECT_NE(message([&] { data::open_dataset(t.path(), std::nullopt); }).find("empty"), std::string::npos);
  write_file(t.path() / "imgs" / "a.png", "x");
  write_file(t.path() / "gt.txt", "1\n2\n");
  EXPECT_NE(message([&] {
              data::list_with_label_file(t.path() / "imgs", t.path() / "gt.txt", {});
            }).find("2 labels for 1 files"),
            std::string::npos);
  write_file(t.path() / "bad.txt", "a.png dog\n");
  EXPECT_NE(message([&] {
              data::list_with_label_file(t.path() / "imgs", t.path() / "bad.txt", {"cat"});
            }).find("'dog'"),
            std::string::npos);
}
