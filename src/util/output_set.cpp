#include "vimvq/util/output_set.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "vimvq/util/error.h"
#include "vimvq/util/fnv1a.h"

namespace vimvq {
namespace fs = std::filesystem;
namespace {

// --- staged files the signal handler removes: fixed storage, touched only with signals blocked
// by the writer (a handler may run between any two instructions).
constexpr size_t kMaxStaged = 16;
constexpr size_t kMaxPath = 4096;
char g_staged[kMaxStaged][kMaxPath];
char g_message[512] = "nothing was written";
volatile std::sig_atomic_t g_staged_used[kMaxStaged];

void remember_staged(const fs::path& p) {
  const std::string s = p.string();
  if (s.size() >= kMaxPath) return;
  InterruptsDeferred block;
  for (size_t i = 0; i < kMaxStaged; ++i) {
    if (!g_staged_used[i]) {
      std::memcpy(g_staged[i], s.c_str(), s.size() + 1);
      g_staged_used[i] = 1;
      return;
    }
  }
}

void forget_staged(const fs::path& p) {
  const std::string s = p.string();
  InterruptsDeferred block;
  for (size_t i = 0; i < kMaxStaged; ++i)
    if (g_staged_used[i] && s == g_staged[i]) g_staged_used[i] = 0;
}

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::system_error(errno, std::generic_category());
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void on_interrupt(int sig) {
  for (size_t i = 0; i < kMaxStaged; ++i)
    if (g_staged_used[i]) ::unlink(g_staged[i]);
  // SIGUSR1: a scheduler's warning before it ends the job (Slurm's --signal), a stop like SIGTERM.
  const char* name = sig == SIGINT    ? "vimvq: interrupted (SIGINT): "
                     : sig == SIGUSR1 ? "vimvq: stopped (SIGUSR1): "
                                      : "vimvq: terminated (SIGTERM): ";
  ssize_t ignored = ::write(STDERR_FILENO, "\n", 1);
  ignored = ::write(STDERR_FILENO, name, std::strlen(name));
  ignored = ::write(STDERR_FILENO, g_message, std::strlen(g_message));
  ignored = ::write(STDERR_FILENO, "\n", 1);
  (void)ignored;
  ::_exit(128 + sig);
}

// The file a path names for identity checks: device and inode when it exists.
struct Identity {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  fs::path resolved;
};

Identity identity_of(const fs::path& p) {
  Identity id;
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0) {
    id.exists = true;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
  }
  std::error_code ec;
  id.resolved = fs::weakly_canonical(fs::absolute(p, ec), ec);
  if (ec) id.resolved = fs::absolute(p);
  return id;
}

bool same_file(const fs::path& a, const fs::path& b) {
  const Identity x = identity_of(a), y = identity_of(b);
  if (x.exists && y.exists) return x.dev == y.dev && x.ino == y.ino;
  return x.resolved == y.resolved;
}

// Whether `path`, with symbolic links and '..' resolved, lies somewhere under the folder `dir`:
// writing there would put a file among the images (or other inputs) of a later run.
bool inside_folder(const fs::path& path, const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  const fs::path folder = fs::canonical(dir, ec);
  if (ec) return false;
  const fs::path resolved = identity_of(path).resolved;
  auto f = folder.begin(), r = resolved.begin();
  for (; f != folder.end(); ++f, ++r)
    if (r == resolved.end() || *f != *r) return false;
  return r != resolved.end();
}

bool process_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH); }

// The PID at the end of `name` when it is `prefix` followed by digits only, else 0.
pid_t pid_after(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return 0;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return static_cast<pid_t>(std::stol(digits));
}

// Temporary and backup files of `target` that a killed run left behind (their PID is gone).
void remove_stale_siblings(const fs::path& target) {
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::vector<std::string> prefixes;
  for (const char* kind : {"tmp", "old"}) {
    prefixes.push_back(sibling_path(target, kind).filename().string());
    prefixes.push_back(target.filename().string() + "." + kind);  // both name forms
  }
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    for (const auto& prefix : prefixes) {
      const pid_t pid = pid_after(name, prefix);
      if (pid != 0 && pid != ::getpid() && !process_alive(pid) && it->is_regular_file()) {
        std::error_code ignored;
        fs::remove(it->path(), ignored);
        break;
      }
    }
  }
}

std::string read_holder(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string pid(buf, n > 0 ? static_cast<size_t>(n) : 0);
  pid.erase(pid.find_last_not_of(" \n") + 1);
  return pid.empty() ? "unknown" : pid;
}

}  // namespace

InterruptsDeferred::InterruptsDeferred() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, &saved_);
}

InterruptsDeferred::~InterruptsDeferred() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

fs::path sibling_path(const fs::path& target, const std::string& kind) {
  const std::string name = target.filename().string();
  const fs::path dir = target.parent_path();
  const long limit = ::pathconf(dir.empty() ? "." : dir.c_str(), _PC_NAME_MAX);
  const size_t name_max = limit > 0 ? static_cast<size_t>(limit) : NAME_MAX;
  std::string sibling = name + "." + kind;
  if (sibling.size() > name_max) sibling = ".vimvq-" + hex64(fnv1a(kFnv1aOffset, name)) + "." + kind;
  return dir / sibling;
}

OutputSet::OutputSet(bool lock_outputs) : lock_outputs_(lock_outputs) {}

OutputSet::~OutputSet() {
  discard();
  unlock_all();
}

void OutputSet::lock(Entry& e) {
  const fs::path path = sibling_path(e.target, "lock");
  for (int attempt = 0; attempt < 16; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw Error(e.path.string() + ": cannot create its lock file " + path.string() + " (" +
                  std::strerror(errno) + ")");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int saved = errno;
      const std::string holder = read_holder(fd);
      ::close(fd);
      if (saved == EWOULDBLOCK)
        throw Error(e.path.string() + ": another vimvq run (PID " + holder + ") is writing this " + e.what +
                    " (lock " + path.string() + "); wait for it to end, or choose another file");
      throw Error(e.path.string() + ": cannot lock " + path.string() + " (" + std::strerror(saved) + ")");
    }
    struct stat held = {};
    struct stat named = {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      // The PID only serves the message a second run prints; the lock holds without it.
      const bool pid_written = ::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) > 0;
      (void)pid_written;
      remember_staged(path);  // an interrupted run removes its lock file too
      e.lock_fd = fd;
      e.lock = path;
      return;
    }
    ::close(fd);  // the holder removed the file between our open and our lock: take the new one
  }
  throw Error(e.path.string() + ": cannot lock " + path.string() + " (it keeps being replaced)");
}

void OutputSet::unlock_all() {
  for (auto& e : outputs_) {
    if (e.lock_fd < 0) continue;
    ::unlink(e.lock.c_str());  // before the unlock: a run that opened it then finds it replaced
    forget_staged(e.lock);
    ::close(e.lock_fd);
    e.lock_fd = -1;
  }
}

void OutputSet::discard() {
  for (auto& e : outputs_) {
    if (!e.is_staged) continue;
    std::error_code ec;
    fs::remove(e.staged, ec);
    forget_staged(e.staged);
    e.is_staged = false;
  }
}

void OutputSet::add_input(const fs::path& path, const std::string& what) {
  for (const auto& out : outputs_) check_not_inside(out.path, out.what, {path, what});
  inputs_.push_back({path, what});
}

void OutputSet::check_not_inside(const fs::path& output, const std::string& what, const Input& in) {
  if (inside_folder(output, in.path))
    throw Error(output.string() + ": " + what + " lies inside the " + in.what + " (" + in.path.string() +
                "); refusing to write into an input folder");
}

void OutputSet::add_output(const fs::path& path, const std::string& what) {
  const std::string name = path.string();
  if (path.empty()) throw Error(what + ": empty file name");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::is_directory(st)) throw Error(name + ": is a folder, expected a file name (" + what + ")");
  for (const auto& in : inputs_) {
    check_not_inside(path, what, in);
    if (same_file(path, in.path))
      throw Error(name + ": " + what + " is the same file as the " + in.what + " (" + in.path.string() +
                  "); refusing to overwrite an input");
  }
  for (const auto& out : outputs_) {
    if (same_file(path, out.path))
      throw Error(name + ": " + what + " is the same file as the " + out.what + " (" + out.path.string() +
                  "); give each output its own file");
  }
  Entry e;
  e.path = path;
  e.what = what;
  e.target = fs::exists(st) ? fs::canonical(path, ec) : path;
  if (ec) e.target = path;
  e.write_through = fs::exists(st) && !fs::is_regular_file(st);
  if (e.write_through) {
    if (::access(path.c_str(), W_OK) != 0)
      throw Error(name + ": cannot write (" + std::strerror(errno) + ")");
  } else {
    const fs::path dir = e.target.has_parent_path() ? e.target.parent_path() : fs::path(".");
    if (!fs::is_directory(dir))
      throw Error(name + ": cannot write (folder " + dir.string() + " does not exist)");
    if (::access(dir.c_str(), W_OK) != 0)
      throw Error(name + ": cannot write (folder " + dir.string() + " is not writable)");
    if (e.target.filename().string().size() > NAME_MAX)
      throw Error(name + ": file name longer than the file system allows (" + std::to_string(NAME_MAX) +
                  " bytes)");
    e.staged = sibling_path(e.target, "tmp" + std::to_string(::getpid()));
    if (lock_outputs_) lock(e);
    remove_stale_siblings(e.target);
  }
  outputs_.push_back(std::move(e));
}

OutputSet::Entry& OutputSet::find(const fs::path& output) {
  for (auto& e : outputs_)
    if (e.path == output) return e;
  throw Error(output.string() + ": internal error: output was not declared");
}

const OutputSet::Entry& OutputSet::find(const fs::path& output) const {
  return const_cast<OutputSet*>(this)->find(output);
}

fs::path OutputSet::staged_path(const fs::path& output) const {
  const Entry& e = find(output);
  if (!e.is_staged) throw Error(output.string() + ": internal error: nothing staged");
  return e.staged;
}

void OutputSet::stage(const fs::path& output, const std::string& content) {
  Entry& e = find(output);
  if (e.write_through) {  // written at commit, when every other output is ready too
    e.content = content;
    e.is_staged = true;
    return;
  }
  remember_staged(e.staged);
  e.is_staged = true;
  const int fd = ::open(e.staged.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int saved = errno;
    discard();
    throw Error(e.path.string() + ": cannot write (" + std::strerror(saved) + ")");
  }
  try {
    write_all(fd, content.data(), content.size());
    if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category());
  } catch (const std::system_error& err) {
    ::close(fd);
    discard();
    throw Error(e.path.string() + ": write failed (" + err.code().message() + ")");
  }
  if (::close(fd) != 0) {
    const int saved = errno;
    discard();
    throw Error(e.path.string() + ": write failed (" + std::strerror(saved) + ")");
  }
}

// Special files first: they cannot be put back, but nothing of the user's is lost in them.
void OutputSet::write_through_staged() {
  for (auto& e : outputs_) {
    if (!e.write_through || !e.is_staged) continue;
    const int fd = ::open(e.target.c_str(), O_WRONLY | O_CLOEXEC);
    try {
      if (fd < 0) throw std::system_error(errno, std::generic_category());
      write_all(fd, e.content.data(), e.content.size());
      if (::close(fd) != 0) throw std::system_error(errno, std::generic_category());
    } catch (const std::system_error& err) {
      if (fd >= 0) ::close(fd);
      discard();
      throw Error(e.path.string() + ": write failed (" + err.code().message() + ")");
    }
    e.is_staged = false;
  }
}

void OutputSet::commit(const std::string& message_after) {
  const InterruptsDeferred deferred;  // nobody outside sees half a commit
  write_through_staged();
  // Regular files: each existing one is kept under a hard link until every rename has succeeded.
  struct Done {
    Entry* entry;
    fs::path backup;  // empty: there was no file before
  };
  std::vector<Done> done;
  auto roll_back = [&] {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      std::error_code ec;
      if (it->backup.empty())
        fs::remove(it->entry->target, ec);
      else
        fs::rename(it->backup, it->entry->target, ec);
    }
    discard();
  };
  for (auto& e : outputs_) {
    if (e.write_through || !e.is_staged) continue;
    Done d{&e, {}};
    if (fs::exists(e.target)) {
      d.backup = sibling_path(e.target, "old" + std::to_string(::getpid()));
      if (::link(e.target.c_str(), d.backup.c_str()) != 0) {
        const int saved = errno;
        roll_back();
        throw Error(e.path.string() + ": cannot keep the previous file while replacing it (" +
                    std::strerror(saved) + "); nothing was written");
      }
    }
    if (::rename(e.staged.c_str(), e.target.c_str()) != 0) {
      const int saved = errno;
      if (!d.backup.empty()) ::unlink(d.backup.c_str());
      roll_back();
      throw Error(e.path.string() + ": cannot rename into place (" + std::strerror(saved) +
                  "); nothing was written");
    }
    forget_staged(e.staged);
    e.is_staged = false;
    done.push_back(d);
  }
  for (const auto& d : done)
    if (!d.backup.empty()) ::unlink(d.backup.c_str());
  std::string written = message_after;
  if (written.empty()) {
    for (const auto& e : outputs_) written += (written.empty() ? "wrote " : ", ") + e.path.string();
    if (written.empty()) written = "nothing was written";
  }
  set_interrupt_message(written);
}

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  std::signal(SIGXFSZ, SIG_IGN);
}

void set_interrupt_message(const std::string& message) {
  InterruptsDeferred block;
  const size_t n = std::min(message.size(), sizeof g_message - 1);
  std::memcpy(g_message, message.data(), n);
  g_message[n] = '\0';
}

}  // namespace vimvq
