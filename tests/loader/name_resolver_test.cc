#include "loader/name_resolver.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace genomed::loader {
namespace {

namespace fs = std::filesystem;

// mkdtemp under /tmp, canonicalized; removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/genomed-resolver-test-XXXXXX";
    const char* made = ::mkdtemp(templ);
    EXPECT_NE(made, nullptr);
    path_ = made ? fs::canonical(made).string() : "/nonexistent";
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

void touch(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "{}";
  ASSERT_TRUE(fs::is_regular_file(path)) << path;
}

// DIR/adapter_config.json and DIR/adapter_model.safetensors (contents irrelevant).
void make_adapter(const std::string& dir) {
  touch(dir + "/" + layout::kConfigFileName);
  touch(dir + "/" + layout::kWeightsFileName);
}

NameResolver resolver_for(const std::vector<std::string>& roots,
                          BeneathResolution how = BeneathResolution::automatic) {
  auto r = NameResolver::create(roots, how);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(r).value();
}

// What an open descriptor reads from offset 0.
std::string read_fd(int fd) {
  std::string out(4096, '\0');
  const ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

bool same_file(int fd, const std::string& path) {
  struct stat a {
  }, b{};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

// ---- validate_name ------------------------------------------------------------

TEST(ValidateName, AcceptsPlainNestedAndDottedNames) {
  for (const char* name :
       {"a", "org/model-v2", "x.y", "..a", "a..", "a/b/c/d", ".hidden", "v1.0/...x"}) {
    const Status s = validate_name(name);
    EXPECT_TRUE(s.ok()) << name << ": " << s.to_string();
  }
}

TEST(ValidateName, AcceptsANameOfExactlyMaxLength) {
  EXPECT_TRUE(validate_name(std::string(kMaxNameLength, 'a')).ok());
}

TEST(ValidateName, RefusesEmptyAbsoluteDotAndEmptyComponentsAsInvalidName) {
  for (const char* name : {"", "/abs", "/", "..", ".", "a/..", "../a", "a/./b", "./a", "a/.",
                           "a//b", "trailing/", "a/b/../c"}) {
    const Status s = validate_name(name);
    EXPECT_EQ(s.code(), Errc::invalid_name) << "'" << name << "': " << s.to_string();
  }
}

TEST(ValidateName, RefusesNulAndBackslashAsInvalidName) {
  for (const std::string& name : {std::string("a\0b", 3), std::string("\0", 1), std::string("a\\b"),
                                  std::string("..\\..\\etc")}) {
    const Status s = validate_name(name);
    EXPECT_EQ(s.code(), Errc::invalid_name) << s.to_string();
  }
}

TEST(ValidateName, RefusesNamesLongerThanMaxLengthAsInvalidName) {
  const Status s = validate_name(std::string(kMaxNameLength + 1, 'a'));
  EXPECT_EQ(s.code(), Errc::invalid_name);
  EXPECT_NE(s.message().find(std::to_string(kMaxNameLength)), std::string::npos) << s.message();
  // The message quotes only a prefix of a long name.
  EXPECT_LT(s.message().size(), 300u);
}

// ---- NameResolver::create --------------------------------------------------

TEST(NameResolverCreate, RefusesAMissingRootNamingIt) {
  TempDir tmp;
  const std::string missing = tmp / "no-such-dir";
  const auto r = NameResolver::create({missing});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::not_found);
  EXPECT_NE(r.status().message().find(missing), std::string::npos) << r.status().message();
}

TEST(NameResolverCreate, RefusesAFileRootNamingIt) {
  TempDir tmp;
  const std::string file = tmp / "plain-file";
  touch(file);
  const auto r = NameResolver::create({tmp.path(), file});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::not_found);
  EXPECT_NE(r.status().message().find(file), std::string::npos) << r.status().message();
}

TEST(NameResolverCreate, RefusesNoRootsAtAll) {
  EXPECT_EQ(NameResolver::create({}).code(), Errc::bad_request);
}

TEST(NameResolverCreate, CanonicalizesRoots) {
  TempDir tmp;
  fs::create_directories(tmp / "real");
  fs::create_directory_symlink(tmp / "real", tmp / "link");
  const NameResolver r = resolver_for({tmp.path() + "/./real/../link/"});
  EXPECT_EQ(r.roots(), std::vector<std::string>{tmp / "real"});
}

// ---- open --------------------------------------------------------------------
// Every case runs with openat2 and with the walk that replaces it on kernels
// without it.

class NameResolverOpen : public ::testing::TestWithParam<BeneathResolution> {
 protected:
  NameResolver resolver(const std::vector<std::string>& roots) {
    return resolver_for(roots, GetParam());
  }
};

TEST_P(NameResolverOpen, FindsAnAdapterInTheSecondRootAndOpensItsFiles) {
  TempDir a, b;
  make_adapter(b / "org/m");
  const NameResolver r = resolver({a.path(), b.path()});
  const auto opened = r.open("org/m");
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_EQ(opened->paths.config, b / "org/m/adapter_config.json");
  EXPECT_EQ(opened->paths.weights, b / "org/m/adapter_model.safetensors");
  ASSERT_NE(opened->files, nullptr);
  EXPECT_TRUE(same_file(opened->files->config.get(), opened->paths.config));
  EXPECT_TRUE(same_file(opened->files->weights.get(), opened->paths.weights));
  struct stat st {};
  ASSERT_EQ(::stat(opened->paths.weights.c_str(), &st), 0);
  EXPECT_EQ(opened->weights, identity_of(st));
  EXPECT_TRUE(opened->unchanged().ok());
}

TEST_P(NameResolverOpen, FirstRootWinsWhenBothHoldTheName) {
  TempDir a, b;
  make_adapter(a / "m");
  make_adapter(b / "m");
  const NameResolver r = resolver({a.path(), b.path()});
  const auto opened = r.open("m");
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_EQ(opened->paths.config, a / "m/adapter_config.json");
  EXPECT_TRUE(same_file(opened->files->weights.get(), a / "m/adapter_model.safetensors"));
}

TEST_P(NameResolverOpen, NotFoundNamesTheNameAndEveryRoot) {
  TempDir a, b;
  const NameResolver r = resolver({a.path(), b.path()});
  const auto opened = r.open("nowhere");
  ASSERT_EQ(opened.code(), Errc::not_found) << opened.status().to_string();
  const std::string msg = opened.status().message();
  EXPECT_NE(msg.find("nowhere"), std::string::npos) << msg;
  EXPECT_NE(msg.find(a.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find(b.path()), std::string::npos) << msg;
}

TEST_P(NameResolverOpen, ARegularFileOfThatNameIsNotAnAdapter) {
  TempDir a;
  touch(a / "m");
  const NameResolver r = resolver({a.path()});
  EXPECT_EQ(r.open("m").code(), Errc::not_found);
  EXPECT_EQ(r.open("m/x").code(), Errc::not_found);  // through a file: ENOTDIR
}

TEST_P(NameResolverOpen, InvalidNameIsRefusedBeforeTouchingTheDisk) {
  TempDir a;
  make_adapter(a / "m");
  const NameResolver r = resolver({a.path()});
  EXPECT_EQ(r.open("m/../m").code(), Errc::invalid_name);
  EXPECT_EQ(r.open(a / "m").code(), Errc::invalid_name);
}

TEST_P(NameResolverOpen, DirectorySymlinkLeavingTheRootIsRefusedNamingIt) {
  TempDir root, outside;
  make_adapter(outside / "victim");
  fs::create_directory_symlink(outside / "victim", root / "evil");
  const NameResolver r = resolver({root.path()});
  const auto opened = r.open("evil");
  ASSERT_EQ(opened.code(), Errc::path_escapes_root) << opened.status().to_string();
  EXPECT_NE(opened.status().message().find(root / "evil"), std::string::npos)
      << opened.status().message();
  EXPECT_NE(opened.status().message().find("symbolic link"), std::string::npos);
}

TEST_P(NameResolverOpen, RelativeSymlinkClimbingOutOfTheRootIsRefused) {
  TempDir tmp;
  fs::create_directories(tmp / "root");
  make_adapter(tmp / "secret");
  fs::create_directory_symlink("../secret", tmp / "root/evil");
  const NameResolver r = resolver({tmp / "root"});
  EXPECT_EQ(r.open("evil").code(), Errc::path_escapes_root);
}

TEST_P(NameResolverOpen, SymlinkToTheRootItselfIsRefused) {
  TempDir root;
  fs::create_directory_symlink(root.path(), root / "self");
  const NameResolver r = resolver({root.path()});
  EXPECT_EQ(r.open("self").code(), Errc::path_escapes_root);
}

TEST_P(NameResolverOpen, ASymlinkAtAnyComponentOrFileIsRefusedEvenInsideTheRoot) {
  // org/team/m: each directory and each file in turn becomes a symlink to
  // the real thing, inside the root. None is followed.
  TempDir root;
  make_adapter(root / "org/team/m");
  const NameResolver r = resolver({root.path()});
  ASSERT_TRUE(r.open("org/team/m").ok());
  const std::vector<std::string> parts = {"org", "org/team", "org/team/m",
                                          std::string("org/team/m/") + layout::kConfigFileName,
                                          std::string("org/team/m/") + layout::kWeightsFileName};
  for (const std::string& part : parts) {
    SCOPED_TRACE(part);
    fs::rename(root / part, root / (part + ".real"));
    fs::create_symlink(root / (part + ".real"), root / part);
    const auto opened = r.open("org/team/m");
    EXPECT_EQ(opened.code(), Errc::path_escapes_root) << opened.status().to_string();
    fs::remove(root / part);
    fs::rename(root / (part + ".real"), root / part);
  }
  EXPECT_TRUE(r.open("org/team/m").ok());
}

TEST_P(NameResolverOpen, SymlinkedWeightsLeavingTheRootAreRefusedNamingTheFile) {
  TempDir root, outside;
  touch(outside / "passwd");
  touch(root / "m/adapter_config.json");
  fs::create_symlink(outside / "passwd", root / "m/adapter_model.safetensors");
  const NameResolver r = resolver({root.path()});
  const auto opened = r.open("m");
  ASSERT_EQ(opened.code(), Errc::path_escapes_root) << opened.status().to_string();
  EXPECT_NE(opened.status().message().find(root / "m/adapter_model.safetensors"), std::string::npos)
      << opened.status().message();
}

TEST_P(NameResolverOpen, RootGivenThroughASymlinkIsCanonical) {
  TempDir tmp;
  make_adapter(tmp / "real/m");
  fs::create_directory_symlink(tmp / "real", tmp / "link");
  const NameResolver r = resolver({tmp / "link"});
  const auto opened = r.open("m");
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_EQ(opened->paths.config, tmp / "real/m/adapter_config.json");
}

TEST_P(NameResolverOpen, AMissingFileIsUnreadableNamingIt) {
  TempDir root;
  touch(root / "m/adapter_config.json");
  fs::create_directories(root / "empty");
  const NameResolver r = resolver({root.path()});
  const auto opened = r.open("m");
  ASSERT_EQ(opened.code(), Errc::file_unreadable) << opened.status().to_string();
  EXPECT_NE(opened.status().message().find(root / "m/adapter_model.safetensors"), std::string::npos)
      << opened.status().message();
  const auto empty = r.open("empty");
  ASSERT_EQ(empty.code(), Errc::file_unreadable);
  EXPECT_NE(empty.status().message().find("adapter_config.json"), std::string::npos);
}

TEST_P(NameResolverOpen, AFifoOrADirectoryInPlaceOfAFileIsUnreadableWithoutBlocking) {
  TempDir root;
  touch(root / "fifo/adapter_config.json");
  ASSERT_EQ(::mkfifo((root / "fifo/adapter_model.safetensors").c_str(), 0600), 0);
  touch(root / "dir/adapter_model.safetensors");
  fs::create_directories(root / "dir/adapter_config.json");
  const NameResolver r = resolver({root.path()});
  const auto fifo = r.open("fifo");
  EXPECT_EQ(fifo.code(), Errc::file_unreadable);
  EXPECT_NE(fifo.status().message().find("not a regular file"), std::string::npos);
  const auto dir = r.open("dir");
  EXPECT_EQ(dir.code(), Errc::file_unreadable);
  EXPECT_NE(dir.status().message().find("not a regular file"), std::string::npos);
}

TEST_P(NameResolverOpen, FilesystemRootServesAdaptersBelowIt) {
  // "--root /" is a legal configuration: every directory is inside "/".
  TempDir tmp;
  make_adapter(tmp / "m");
  const NameResolver r = resolver({"/"});
  const std::string name = (tmp / "m").substr(1);  // relative to "/"
  const auto opened = r.open(name);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_EQ(opened->paths.config, tmp / "m/adapter_config.json");
}

TEST_P(NameResolverOpen, TheOpenFilesStayTheOnesFoundWhateverIsSwappedAfterwards) {
  TempDir root, outside;
  std::filesystem::create_directories(root / "m");
  std::ofstream(root / "m/adapter_config.json") << "inside config";
  std::ofstream(root / "m/adapter_model.safetensors") << "inside weights";
  make_adapter(outside / "m");
  const NameResolver r = resolver({root.path()});
  const auto opened = r.open("m");
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  // The directory is swapped for a symlink out of the root: the load reads
  // through its descriptors, never the path.
  fs::rename(root / "m", root / "m.old");
  fs::create_directory_symlink(outside / "m", root / "m");
  EXPECT_EQ(read_fd(opened->files->config.get()), "inside config");
  EXPECT_EQ(read_fd(opened->files->weights.get()), "inside weights");
  EXPECT_TRUE(opened->unchanged().ok());
  // And the name no longer opens at all.
  EXPECT_EQ(r.open("m").code(), Errc::path_escapes_root);
}

INSTANTIATE_TEST_SUITE_P(Resolutions, NameResolverOpen,
                         ::testing::Values(BeneathResolution::openat2, BeneathResolution::walk),
                         [](const auto& info) {
                           return info.param == BeneathResolution::openat2 ? "Openat2" : "Walk";
                         });

}  // namespace
}  // namespace genomed::loader
