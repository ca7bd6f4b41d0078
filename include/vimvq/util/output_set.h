// Every file one run writes, committed together at the end or not at all (docs/RELIABILITY.md).
// Outputs are checked when declared: none may be the same file as an input or as another output
// (device and inode when the file exists, the resolved path otherwise), nor lie anywhere inside
// an input folder (symbolic links and '..' resolved). Contents are staged in
// temporary files beside their targets; commit() renames them all into place, putting back what
// was there if any rename fails. An existing output that is not a regular file (/dev/null, a
// pipe) is written through, never replaced. Staged files are removed on every failure path,
// including SIGINT, SIGTERM and SIGUSR1 (see install_interrupt_handler). Each regular output is locked
// (flock on a lock file beside it) for the set's lifetime: a second run on the same output is
// refused, naming the holder's PID. Temporary files that a killed run (kill -9) left beside an
// output are removed when the output is declared again.
#pragma once

#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

namespace vimvq {

class OutputSet {
 public:
  // lock_outputs = false: for a file written inside a run whose own set already holds its lock
  // (write_file_atomically).
  explicit OutputSet(bool lock_outputs = true);
  ~OutputSet();  // removes whatever is still staged, and the locks
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
  // SIGINT, SIGTERM and SIGUSR1 wait for its end, so that no interruption sees half of it; from then on an
  // interruption says `message_after` (default: which files were written).
  void commit(const std::string& message_after = "");

 private:
  struct Entry {
    std::filesystem::path path;    // as given, for messages
    std::filesystem::path target;  // where it goes (symbolic links resolved)
    std::string what;
    bool write_through = false;    // an existing non-regular file
    std::filesystem::path staged;  // the temporary file beside the target
    std::string content;           // write-through outputs wait in memory for commit()
    bool is_staged = false;
    int lock_fd = -1;            // held from declaration to destruction (one run per output)
    std::filesystem::path lock;  // the lock file beside the target
  };
  void lock(Entry& e);
  void write_through_staged();
  void unlock_all();
  Entry& find(const std::filesystem::path& output);
  const Entry& find(const std::filesystem::path& output) const;
  void discard();

  struct Input {
    std::filesystem::path path;
    std::string what;
  };
  static void check_not_inside(const std::filesystem::path& output, const std::string& what, const Input& in);
  std::vector<Input> inputs_;
  std::vector<Entry> outputs_;
  bool lock_outputs_ = true;
};

// Defers SIGINT, SIGTERM and SIGUSR1 while it lives (they are delivered at its end): for work that must be
// seen whole from outside, such as a commit and the removal of what it makes obsolete.
class InterruptsDeferred {
 public:
  InterruptsDeferred();
  ~InterruptsDeferred();
  InterruptsDeferred(const InterruptsDeferred&) = delete;
  InterruptsDeferred& operator=(const InterruptsDeferred&) = delete;

 private:
  sigset_t saved_;
};

// The name of a run's own file beside `target`: "<name>.<kind>" (kind "tmp12345", "old12345",
// "lock"), or, where that would pass the file system's name limit (NAME_MAX), a short hidden name
// derived from the target's, so that any name the file system accepts works as an output.
std::filesystem::path sibling_path(const std::filesystem::path& target, const std::string& kind);

// SIGINT, SIGTERM and SIGUSR1 remove every staged file, print one line (`vimvq: interrupted: <message>`)
// and exit with 128 + the signal. SIGXFSZ is ignored, so that a file-size limit surfaces as a
// write error naming the file instead of killing the process silently.
void install_interrupt_handler();
void set_interrupt_message(const std::string& message);

}  // namespace vimvq
