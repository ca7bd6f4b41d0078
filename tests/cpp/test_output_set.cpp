// OutputSet: identity checks, staging, all-or-nothing commit, special files, clean-up.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "test_util.h"
#include "vimvq/util/error.h"
#include "vimvq/util/output_set.h"

namespace vimvq {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Files in `dir`, not counting the lock files a live set holds beside its outputs.
size_t entries(const fs::path& dir) {
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it)
    n += it->path().extension() != ".lock";
  return n;
}

TEST(OutputSet, RefusesAnOutputThatIsAnInputUnderAnotherName) {
  test::TempDir tmp;
  write(tmp.path() / "model.pt", "weights");
  fs::create_hard_link(tmp.path() / "model.pt", tmp.path() / "alias.pt");
  fs::create_directory(tmp.path() / "sub");
  OutputSet files;
  files.add_input(tmp.path() / "model.pt", "model");
  EXPECT_THROW(files.add_output(tmp.path() / "sub" / ".." / "model.pt", "-o"), Error);
  EXPECT_THROW(files.add_output(tmp.path() / "alias.pt", "-o"), Error);
  files.add_output(tmp.path() / "out.vqpk", "-o");
  EXPECT_THROW(files.add_output(tmp.path() / "sub" / ".." / "out.vqpk", "--report"), Error);  // not there yet
  EXPECT_THROW(files.add_output(tmp.path(), "--report"), Error);                              // a folder
  EXPECT_THROW(files.add_output(tmp.path() / "missing" / "r.json", "--report"), Error);
  EXPECT_EQ(read(tmp.path() / "model.pt"), "weights");
}

TEST(OutputSet, RefusesAnOutputInsideAnInputFolderHoweverItIsNamed) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "calib" / "c0");
  fs::create_directory_symlink(tmp.path() / "calib" / "c0", tmp.path() / "link");
  OutputSet files;
  files.add_input(tmp.path() / "calib", "calibration folder");
  for (const fs::path& inside :
       {tmp.path() / "calib" / "c0" / "x.png", tmp.path() / "link" / "new.json",
        tmp.path() / "calib" / "c0" / ".." / "r.json", tmp.path() / "calib" / "new.vqpk"}) {
    const std::string message = test::refusal([&] { files.add_output(inside, "--report"); });
    EXPECT_NE(message.find("inside the calibration folder"), std::string::npos) << inside << ": " << message;
  }
  files.add_output(tmp.path() / "calib.vqpk", "-o");  // beside the folder, not in it
  OutputSet reversed;                                 // the output declared first, the input after
  reversed.add_output(tmp.path() / "calib" / "y.json", "--report");
  EXPECT_THROW(reversed.add_input(tmp.path() / "calib", "data folder"), Error);
}

TEST(OutputSet, ASecondSetOnTheSameOutputIsRefusedNamingThePid) {
  test::TempDir tmp;
  const fs::path out = tmp.path() / "q.vqpk";
  {
    OutputSet first;
    first.add_output(out, "-o");
    OutputSet second;
    const std::string message = test::refusal([&] { second.add_output(out, "-o"); });
    EXPECT_NE(message.find("PID " + std::to_string(::getpid())), std::string::npos) << message;
    OutputSet unlocked(/*lock_outputs=*/false);  // a file the first set's run writes itself
    unlocked.add_output(out, "-o");
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "q.vqpk.lock"));
  OutputSet again;  // the lock went with the first set
  again.add_output(out, "-o");
}

TEST(OutputSet, NamesUpToTheLimitWorkAndLongerOnesAreRefused) {
  test::TempDir tmp;
  const long limit = ::pathconf(tmp.path().c_str(), _PC_NAME_MAX);
  ASSERT_GT(limit, 16);
  const fs::path longest = tmp.path() / std::string(static_cast<size_t>(limit), 'o');
  EXPECT_LE(sibling_path(longest, "tmp12345").filename().string().size(), static_cast<size_t>(limit));
  EXPECT_EQ(sibling_path(tmp.path() / "q.vqpk", "tmp7").filename(), "q.vqpk.tmp7");
  {
    OutputSet files;
    files.add_output(longest, "-o");
    files.stage(longest, "x");
    files.commit();
  }
  EXPECT_EQ(read(longest), "x");
  EXPECT_EQ(entries(tmp.path()), 1u);
  OutputSet files;
  EXPECT_THROW(files.add_output(tmp.path() / std::string(static_cast<size_t>(limit) + 1, 'o'), "-o"), Error);
}

TEST(OutputSet, NothingAppearsBeforeCommitAndNothingStaysWithoutIt) {
  test::TempDir tmp;
  const fs::path a = tmp.path() / "a.json", b = tmp.path() / "b.csv";
  {
    OutputSet files;
    files.add_output(a, "a");
    files.add_output(b, "b");
    files.stage(a, "A");
    EXPECT_FALSE(fs::exists(a));
    EXPECT_EQ(read(files.staged_path(a)), "A");
  }  // destroyed without commit: a failed run
  EXPECT_EQ(entries(tmp.path()), 0u);
  OutputSet files;
  files.add_output(a, "a");
  files.add_output(b, "b");
  files.stage(a, "A");
  files.stage(b, "B");
  files.commit();
  EXPECT_EQ(read(a), "A");
  EXPECT_EQ(read(b), "B");
  EXPECT_EQ(entries(tmp.path()), 2u);
}

TEST(OutputSet, InterruptsWaitForTheEndOfADeferredSection) {
  sigset_t pending;
  {
    const InterruptsDeferred deferred;
    ::raise(SIGTERM);  // blocked: it waits
    sigpending(&pending);
    EXPECT_TRUE(sigismember(&pending, SIGTERM));
    // drain it here, so that the test process is not terminated when the block ends
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    int sig = 0;
    sigwait(&term, &sig);
    EXPECT_EQ(sig, SIGTERM);
  }
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGTERM));
}

TEST(OutputSet, AFailedRenamePutsBackWhatWasThere) {
  test::TempDir tmp;
  const fs::path a = tmp.path() / "a.json", b = tmp.path() / "b.csv";
  write(a, "previous");
  OutputSet files;
  files.add_output(a, "a");
  files.add_output(b, "b");
  files.stage(a, "new");
  files.stage(b, "B");
  fs::create_directories(b / "blocker");  // b's place is taken by a folder after the checks
  EXPECT_THROW(files.commit(), Error);
  EXPECT_EQ(read(a), "previous");
  EXPECT_TRUE(fs::is_directory(b));
  EXPECT_EQ(entries(tmp.path()), 2u);  // a and the blocking folder: no staged or backup file left
}

TEST(OutputSet, SpecialFilesAreWrittenThroughAndTheirErrorsAreErrors) {
  {
    OutputSet files;
    files.add_output("/dev/null", "--predictions");
    files.stage("/dev/null", "rows\n");
    files.commit();
  }
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  OutputSet files;
  files.add_output("/dev/full", "--report");
  files.stage("/dev/full", "{}\n");
  try {
    files.commit();
    FAIL() << "writing /dev/full succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full: write failed"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vimvq
