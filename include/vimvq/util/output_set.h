// Every file one run writes, committed together at the end or not at all (docs/RELIABILITY.md).
// Outputs are checked when declared: none may be the same file as an input or as another output
// (device and inode when the file exists, the resolved path otherwise). Contents are staged in
// temporary files beside their targets; commit() renames them all into place, putting back what
// was there if any rename fails. An existing output that is not a regular file (/dev/null, a
// pipe) is written through, never replaced. Staged files are removed on every failure path,
// including SIGINT and SIGTERM (see install_interrupt_handler).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace vimvq {

class OutputSet {
 public:
  OutputSet() = default;
  ~OutputSet();  // removes whatever is still staged
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  // `what` names the role in messages ("model", "--reference"...). Inputs need not exist yet.
  void add_input(const std::filesystem::path& path, const std::string& what);
  // Throws vimvq::Error when the output is a folder, its folder is missing or not writable, or
  // it is the same file as an input or another output.
  void add_output(const std::filesystem::path& path, const std::string& what);

  // Writes `content` to the output's staging file now (a write error throws, naming the path).
  void stage(const std::filesystem::path& output, const std::string& content);
  // Where the staged content of `output` lies until commit (to read it back before committing).
  std::filesystem::path staged_path(const std::filesystem::path& output) const;

  // Puts every staged output in place: all of them, or (on an error, which it throws) none.
  void commit();

 private:
  struct Entry {
    std::filesystem::path path;    // as given, for messages
    std::filesystem::path target;  // where it goes (symbolic links resolved)
    std::string what;
    bool write_through = false;    // an existing non-regular file
    std::filesystem::path staged;  // the temporary file beside the target
    std::string content;           // write-through outputs wait in memory for commit()
    bool is_staged = false;
  };
  Entry& find(const std::filesystem::path& output);
  const Entry& find(const std::filesystem::path& output) const;
  void discard();

  struct Input {
    std::filesystem::path path;
    std::string what;
  };
  std::vector<Input> inputs_;
  std::vector<Entry> outputs_;
};

// SIGINT and SIGTERM remove every staged file, print one line (`vimvq: interrupted: <message>`)
// and exit with 128 + the signal. SIGXFSZ is ignored, so that a file-size limit surfaces as a
// write error naming the file instead of killing the process silently.
void install_interrupt_handler();
void set_interrupt_message(const std::string& message);

}  // namespace vimvq
