#include "vimvq/data/dataset.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "vimvq/util/error.h"

namespace fs = std::filesystem;

namespace vimvq::data {
namespace {

bool is_hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

void require_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error(dir.string() + ": no such folder");
  if (!fs::is_directory(dir, ec)) throw Error(dir.string() + ": not a folder");
}

// Regular, non-hidden files below dir, sorted by path.
std::vector<fs::path> files_under(const fs::path& dir, bool recursive) {
  std::vector<fs::path> files;
  std::error_code ec;
  auto add = [&](const fs::directory_entry& e) {
    if (e.is_regular_file() && !is_hidden(e.path())) files.push_back(e.path());
  };
  if (recursive) {
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) throw Error(dir.string() + ": cannot read folder: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) throw Error(dir.string() + ": cannot read folder: " + ec.message());
      if (is_hidden(it->path()) && it->is_directory()) {
        it.disable_recursion_pending();
        continue;
      }
      add(*it);
    }
  } else {
    fs::directory_iterator it(dir, ec), end;
    if (ec) throw Error(dir.string() + ": cannot read folder: " + ec.message());
    for (; it != end; it.increment(ec)) add(*it);
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> class_subfolders(const fs::path& dir) {
  std::vector<std::string> classes;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory() && !is_hidden(e.path())) classes.push_back(e.path().filename().string());
  }
  if (ec) throw Error(dir.string() + ": cannot read folder: " + ec.message());
  std::sort(classes.begin(), classes.end());
  return classes;
}

}  // namespace

Dataset list_image_folder(const fs::path& dir) {
  require_directory(dir);
  Dataset ds;
  ds.classes = class_subfolders(dir);
  if (ds.classes.empty()) throw Error(dir.string() + ": no class sub-folders");
  for (size_t c = 0; c < ds.classes.size(); ++c) {
    for (auto& f : files_under(dir / ds.classes[c], true)) ds.samples.push_back({f, static_cast<int64_t>(c)});
  }
  if (ds.samples.empty()) throw Error(dir.string() + ": no image files in its class sub-folders");
  return ds;
}

Dataset list_unlabelled(const fs::path& dir) {
  require_directory(dir);
  Dataset ds;
  for (auto& f : files_under(dir, true)) ds.samples.push_back({f, -1});
  if (ds.samples.empty()) throw Error(dir.string() + ": folder is empty (no image files)");
  return ds;
}

namespace {

struct LabelRow {
  std::string file;   // empty in a one-column (ILSVRC) file
  std::string label;  // an integer or a class name
};

std::vector<LabelRow> read_label_rows(const fs::path& label_file) {
  std::ifstream in(label_file);
  if (!in) throw Error(label_file.string() + ": cannot open label file");
  std::vector<LabelRow> rows;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::istringstream fields(line);
    std::string a, b, extra;
    if (!(fields >> a)) continue;
    fields >> b;
    if (fields >> extra)
      throw Error(label_file.string() + ":" + std::to_string(line_no) + ": expected 1 or 2 fields");
    rows.push_back(b.empty() ? LabelRow{"", a} : LabelRow{a, b});
  }
  if (rows.empty()) throw Error(label_file.string() + ": no labels");
  return rows;
}

// How a label file's labels map to class indices.
struct LabelRules {
  const std::vector<std::string>& class_names;
  const fs::path& label_file;
  int base;         // subtracted from integer labels (class names are indices already)
  int num_classes;  // 0: not known here
};

int64_t parse_label(const std::string& text, size_t row, const LabelRules& rules) {
  const std::string where = rules.label_file.string() + ": row " + std::to_string(row + 1);
  int64_t index = -1;
  bool parsed = false;
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) index = v - rules.base, parsed = true;
  } catch (const std::exception&) {
  }
  if (!parsed) {
    auto it = std::find(rules.class_names.begin(), rules.class_names.end(), text);
    if (it == rules.class_names.end())
      throw Error(where + ": label '" + text + "' is neither an integer nor a class name of the model");
    index = it - rules.class_names.begin();
  }
  if (rules.num_classes > 0 && (index < 0 || index >= rules.num_classes)) {
    throw Error(where + ": label " + text + " is out of range: with --label-base " +
                std::to_string(rules.base) + " a model of " + std::to_string(rules.num_classes) +
                " classes takes " + std::to_string(rules.base) + ".." +
                std::to_string(rules.num_classes - 1 + rules.base));
  }
  return index;
}

// ILSVRC style: line i labels the i-th file in sorted name order.
std::vector<Sample> samples_by_line(const fs::path& dir, const std::vector<LabelRow>& rows,
                                    const LabelRules& rules) {
  const auto files = files_under(dir, false);
  if (files.size() != rows.size()) {
    throw Error(rules.label_file.string() + ": " + std::to_string(rows.size()) + " labels for " +
                std::to_string(files.size()) + " files in " + dir.string());
  }
  std::vector<Sample> samples;
  for (size_t i = 0; i < files.size(); ++i)
    samples.push_back({files[i], parse_label(rows[i].label, i, rules)});
  return samples;
}

// "file label" rows, sorted by path. A file labelled twice is an error, not two samples.
std::vector<Sample> samples_by_name(const fs::path& dir, const std::vector<LabelRow>& rows,
                                    const LabelRules& rules) {
  std::vector<Sample> samples;
  std::map<fs::path, size_t> row_of;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string where = rules.label_file.string() + ": row " + std::to_string(i + 1);
    if (rows[i].file.empty()) throw Error(where + ": missing file name");
    fs::path p = dir / rows[i].file;
    if (!fs::exists(p)) throw Error(where + ": " + p.string() + " not found");
    const auto [it, added] = row_of.emplace(fs::weakly_canonical(p), i);
    if (!added)
      throw Error(where + ": " + rows[i].file + " is labelled already in row " +
                  std::to_string(it->second + 1));
    samples.push_back({p, parse_label(rows[i].label, i, rules)});
  }
  std::sort(samples.begin(), samples.end(), [](const Sample& x, const Sample& y) { return x.path < y.path; });
  return samples;
}

}  // namespace

Dataset list_with_label_file(const fs::path& dir, const fs::path& label_file,
                             const std::vector<std::string>& class_names, std::optional<int> label_base,
                             int num_classes) {
  require_directory(dir);
  const auto rows = read_label_rows(label_file);
  const bool by_line = rows.front().file.empty();
  const LabelRules rules{class_names, label_file, label_base.value_or(by_line ? 1 : 0), num_classes};
  Dataset ds;
  ds.samples = by_line ? samples_by_line(dir, rows, rules) : samples_by_name(dir, rows, rules);
  for (const auto& sample : ds.samples) {
    if (sample.label < 0) {
      throw Error(label_file.string() + ": negative label for " + sample.path.filename().string() +
                  " (1-based file? see --label-base)");
    }
  }
  if (ds.samples.empty()) throw Error(dir.string() + ": folder is empty (no image files)");
  return ds;
}

Dataset open_dataset(const fs::path& dir, const std::optional<fs::path>& label_file,
                     const std::vector<std::string>& class_names) {
  if (label_file) return list_with_label_file(dir, *label_file, class_names);
  require_directory(dir);
  if (!class_subfolders(dir).empty() && files_under(dir, false).empty()) return list_image_folder(dir);
  return list_unlabelled(dir);
}

}  // namespace vimvq::data
