#include "loader/name_resolver.h"

#include <gtest/gtest.h>
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
  touch(dir + "/" + format::kConfigFileName);
  touch(dir + "/" + format::kWeightsFileName);
}

NameResolver resolver_for(const std::vector<std::string>& roots) {
  auto r = NameResolver::create(roots);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(r).value();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
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

// ---- resolve -----------------------------------------------------------------

TEST(NameResolverResolve, FindsAnAdapterInTheSecondRoot) {
  TempDir a, b;
  make_adapter(b / "org/m");
  const NameResolver r = resolver_for({a.path(), b.path()});
  const auto paths = r.resolve("org/m");
  ASSERT_TRUE(paths.ok()) << paths.status().to_string();
  EXPECT_EQ(paths->config, b / "org/m/adapter_config.json");
  EXPECT_EQ(paths->weights, b / "org/m/adapter_model.safetensors");
}

TEST(NameResolverResolve, FirstRootWinsWhenBothHoldTheName) {
  TempDir a, b;
  make_adapter(a / "m");
  make_adapter(b / "m");
  const NameResolver r = resolver_for({a.path(), b.path()});
  const auto paths = r.resolve("m");
  ASSERT_TRUE(paths.ok()) << paths.status().to_string();
  EXPECT_EQ(paths->config, a / "m/adapter_config.json");
  EXPECT_EQ(paths->weights, a / "m/adapter_model.safetensors");
}

TEST(NameResolverResolve, NotFoundNamesTheNameAndEveryRoot) {
  TempDir a, b;
  const NameResolver r = resolver_for({a.path(), b.path()});
  const auto paths = r.resolve("nowhere");
  ASSERT_EQ(paths.code(), Errc::not_found) << paths.status().to_string();
  const std::string msg = paths.status().message();
  EXPECT_NE(msg.find("nowhere"), std::string::npos) << msg;
  EXPECT_NE(msg.find(a.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find(b.path()), std::string::npos) << msg;
}

TEST(NameResolverResolve, ARegularFileOfThatNameIsNotAnAdapter) {
  TempDir a;
  touch(a / "m");
  const NameResolver r = resolver_for({a.path()});
  EXPECT_EQ(r.resolve("m").code(), Errc::not_found);
  EXPECT_EQ(r.resolve("m/x").code(), Errc::not_found);  // through a file: ENOTDIR
}

TEST(NameResolverResolve, InvalidNameIsRefusedBeforeTouchingTheDisk) {
  TempDir a;
  make_adapter(a / "m");
  const NameResolver r = resolver_for({a.path()});
  EXPECT_EQ(r.resolve("m/../m").code(), Errc::invalid_name);
  EXPECT_EQ(r.resolve(a / "m").code(), Errc::invalid_name);
}

TEST(NameResolverResolve, DirectorySymlinkLeavingTheRootEscapes) {
  TempDir root, outside;
  make_adapter(outside / "victim");
  fs::create_directory_symlink(outside / "victim", root / "evil");
  const NameResolver r = resolver_for({root.path()});
  const auto paths = r.resolve("evil");
  ASSERT_EQ(paths.code(), Errc::path_escapes_root) << paths.status().to_string();
  EXPECT_NE(paths.status().message().find(outside / "victim"), std::string::npos)
      << paths.status().message();
}

TEST(NameResolverResolve, RelativeSymlinkClimbingOutOfTheRootEscapes) {
  TempDir tmp;
  fs::create_directories(tmp / "root");
  make_adapter(tmp / "secret");
  fs::create_directory_symlink("../secret", tmp / "root/evil");
  const NameResolver r = resolver_for({tmp / "root"});
  EXPECT_EQ(r.resolve("evil").code(), Errc::path_escapes_root);
}

TEST(NameResolverResolve, SymlinkIntoASiblingSharingTheRootsPrefixEscapes) {
  TempDir tmp;
  fs::create_directories(tmp / "root");
  make_adapter(tmp / "root2/m");  // "<tmp>/root2" starts with "<tmp>/root"
  fs::create_directory_symlink(tmp / "root2/m", tmp / "root/m");
  const NameResolver r = resolver_for({tmp / "root"});
  EXPECT_EQ(r.resolve("m").code(), Errc::path_escapes_root);
}

TEST(NameResolverResolve, SymlinkToTheRootItselfIsRefused) {
  TempDir root;
  fs::create_directory_symlink(root.path(), root / "self");
  const NameResolver r = resolver_for({root.path()});
  EXPECT_EQ(r.resolve("self").code(), Errc::path_escapes_root);
}

TEST(NameResolverResolve, SymlinkedConfigLeavingTheRootEscapes) {
  TempDir root, outside;
  touch(outside / "adapter_config.json");
  touch(root / "m/adapter_model.safetensors");
  fs::create_symlink(outside / "adapter_config.json", root / "m/adapter_config.json");
  const NameResolver r = resolver_for({root.path()});
  const auto paths = r.resolve("m");
  ASSERT_EQ(paths.code(), Errc::path_escapes_root) << paths.status().to_string();
  EXPECT_NE(paths.status().message().find("adapter_config.json"), std::string::npos);
}

TEST(NameResolverResolve, SymlinkedWeightsLeavingTheRootEscapes) {
  TempDir root, outside;
  touch(outside / "passwd");
  touch(root / "m/adapter_config.json");
  fs::create_symlink(outside / "passwd", root / "m/adapter_model.safetensors");
  const NameResolver r = resolver_for({root.path()});
  const auto paths = r.resolve("m");
  ASSERT_EQ(paths.code(), Errc::path_escapes_root) << paths.status().to_string();
  EXPECT_NE(paths.status().message().find(outside / "passwd"), std::string::npos)
      << paths.status().message();
}

TEST(NameResolverResolve, WeightsSymlinkedIntoAnotherRootStillEscapesItsOwnRoot) {
  TempDir a, b;
  touch(b / "blob.safetensors");
  touch(a / "m/adapter_config.json");
  fs::create_symlink(b / "blob.safetensors", a / "m/adapter_model.safetensors");
  const NameResolver r = resolver_for({a.path(), b.path()});
  EXPECT_EQ(r.resolve("m").code(), Errc::path_escapes_root);
}

TEST(NameResolverResolve, SymlinksInsideTheRootAreAcceptedAndPathsAreCanonical) {
  TempDir root;
  make_adapter(root / "store/real-v3");
  fs::create_directory_symlink("store/real-v3", root / "alias");  // relative, inside
  touch(root / "store/common.safetensors");
  fs::remove(root / "store/real-v3/adapter_model.safetensors");
  fs::create_symlink("../common.safetensors", root / "store/real-v3/adapter_model.safetensors");
  const NameResolver r = resolver_for({root.path()});
  const auto paths = r.resolve("alias");
  ASSERT_TRUE(paths.ok()) << paths.status().to_string();
  EXPECT_EQ(paths->config, root / "store/real-v3/adapter_config.json");
  EXPECT_EQ(paths->weights, root / "store/common.safetensors");
}

TEST(NameResolverResolve, RootGivenThroughASymlinkResolvesToCanonicalPaths) {
  TempDir tmp;
  make_adapter(tmp / "real/m");
  fs::create_directory_symlink(tmp / "real", tmp / "link");
  const NameResolver r = resolver_for({tmp / "link"});
  const auto paths = r.resolve("m");
  ASSERT_TRUE(paths.ok()) << paths.status().to_string();
  EXPECT_EQ(paths->config, tmp / "real/m/adapter_config.json");
}

TEST(NameResolverResolve, MissingWeightsFileIsPassedThroughUnresolved) {
  TempDir root;
  touch(root / "m/adapter_config.json");
  const NameResolver r = resolver_for({root.path()});
  const auto paths = r.resolve("m");
  ASSERT_TRUE(paths.ok()) << paths.status().to_string();
  EXPECT_EQ(paths->config, root / "m/adapter_config.json");
  EXPECT_TRUE(ends_with(paths->weights, "/adapter_model.safetensors")) << paths->weights;
  EXPECT_EQ(paths->weights, root / "m/adapter_model.safetensors");
}

TEST(NameResolverResolve, EmptyAdapterDirectoryPassesBothPathsThrough) {
  TempDir root;
  fs::create_directories(root / "m");
  const NameResolver r = resolver_for({root.path()});
  const auto paths = r.resolve("m");
  ASSERT_TRUE(paths.ok()) << paths.status().to_string();
  EXPECT_EQ(paths->config, root / "m/adapter_config.json");
  EXPECT_EQ(paths->weights, root / "m/adapter_model.safetensors");
}

TEST(NameResolverResolve, FilesystemRootServesAdaptersBelowIt) {
  // "--root /" is a legal configuration: every directory is inside "/".
  TempDir tmp;
  make_adapter(tmp / "m");
  const NameResolver r = resolver_for({"/"});
  const std::string name = (tmp / "m").substr(1);  // relative to "/"
  const auto paths = r.resolve(name);
  ASSERT_TRUE(paths.ok()) << paths.status().to_string();
  EXPECT_EQ(paths->config, tmp / "m/adapter_config.json");
}

}  // namespace
}  // namespace genomed::loader
