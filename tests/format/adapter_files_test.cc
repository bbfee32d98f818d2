// probe + fill on generated adapters, through open descriptors as the worker
// gets them: the arena range ends up holding exactly the file's tensor bytes
// (with their checksums) for every dtype, a fill split into parts and sealed
// writes the same bytes, a file replaced by rename is still read as the
// version probed, and files that changed in place, are not regular or are
// invalid are refused with the right code.
#include "worker/format/adapter_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "layout/tensor_checksum.h"
#include "tests/format/test_support.h"
#include "tools/fixture/fixture.h"
#include "worker/format/peft_config.h"

namespace genomed::format {
namespace {

using fixture::AdapterSpec;
using testing::TempDir;

layout::AdapterPaths paths_in(const std::string& dir) {
  return {dir + "/" + layout::kConfigFileName, dir + "/" + layout::kWeightsFileName};
}

AdapterSpec small_spec(layout::DType t, std::uint64_t seed = 7) {
  AdapterSpec s;
  s.rank = 3;  // odd sizes, so tensors need alignment padding
  s.hidden = 5;
  s.layers = 2;
  s.dtype = t;
  s.seed = seed;
  return s;
}

Result<SafetensorsHeader> header_of(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  auto r = read_safetensors_header(fd, path);
  ::close(fd);
  return r;
}

layout::AdapterFds open_files(const layout::AdapterPaths& paths) {
  auto files = open_adapter_files(paths);
  EXPECT_TRUE(files.ok()) << files.status().to_string();
  return files ? std::move(files).value() : layout::AdapterFds{};
}

// Opens the files and probes them, as one job of a load.
Result<layout::ProbeResult> probe_paths(const layout::AdapterPaths& paths) {
  const layout::AdapterFds files = open_files(paths);
  return probe_adapter(paths, files);
}

// A whole fill (every tensor and the header).
Status fill_all(const layout::AdapterPaths& paths, const layout::AdapterFds& files, const layout::ResidentLayout& layout,
                std::span<std::byte> dest, std::vector<std::uint64_t>* checksums = nullptr) {
  std::vector<std::uint64_t> sums;
  return fill_adapter(paths, files, layout, dest, layout::FillPart{}, checksums ? checksums : &sums);
}

// The tensor bytes of `file`'s tensor k, as the safetensors header places them.
std::span<const std::byte> file_tensor(const std::string& file, const SafetensorsHeader& h,
                                       std::size_t k) {
  return std::as_bytes(std::span<const char>(file.data() + h.data_offset + h.tensors[k].data_begin,
                                             h.tensors[k].byte_size()));
}

class AdapterFiles : public ::testing::Test {
 protected:
  std::string make(const AdapterSpec& spec, const std::string& name = "a") {
    const std::string dir = tmp_ / name;
    const Status s = fixture::write_adapter(dir, spec);
    EXPECT_TRUE(s.ok()) << s.to_string();
    return dir;
  }
  TempDir tmp_;
};

TEST_F(AdapterFiles, FillCopiesExactlyTheFileBytesForEveryDtype) {
  for (int i = 0; i < layout::kDTypeCount; ++i) {
    const layout::DType t = *layout::dtype_from_int(static_cast<std::uint64_t>(i));
    SCOPED_TRACE(std::string(layout::dtype_name(t)));
    const layout::AdapterPaths paths = paths_in(make(small_spec(t), std::string(layout::dtype_name(t))));
    const layout::AdapterFds files = open_files(paths);
    auto probe = probe_adapter(paths, files);
    ASSERT_TRUE(probe.ok()) << probe.status().to_string();
    const layout::ResidentLayout& layout = probe->layout;
    ASSERT_EQ(layout.tensors.size(), 8u);
    EXPECT_EQ(layout.lora_r, 3u);
    EXPECT_EQ(layout.lora_alpha, 16.0);

    struct stat st {};
    ASSERT_EQ(::stat(paths.weights.c_str(), &st), 0);
    EXPECT_EQ(probe->weights_file_size, static_cast<std::uint64_t>(st.st_size));
    EXPECT_EQ(probe->weights_file_size, fixture::weights_file_size(small_spec(t)));
    EXPECT_EQ(probe->weights_mtime_ns, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec);

    std::vector<std::byte> dest(layout.total_bytes, std::byte{0xCC});
    std::vector<std::uint64_t> checksums;
    const Status filled = fill_all(paths, files, layout, dest, &checksums);
    ASSERT_TRUE(filled.ok()) << filled.to_string();
    ASSERT_EQ(checksums.size(), layout.tensors.size());

    auto back = layout::read_layout_header(dest);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_TRUE(layout::same_layout(*back, layout));
    layout::ResidentLayout with_checksums = layout;

    const std::string file = testing::read_file(paths.weights);
    auto st_header = header_of(paths.weights);
    ASSERT_TRUE(st_header.ok());
    std::vector<bool> covered(dest.size(), false);
    for (std::size_t k = 0; k < layout.tensors.size(); ++k) {
      const layout::ResidentTensor& rt = layout.tensors[k];
      const TensorInfo& ti = st_header->tensors[k];
      ASSERT_EQ(rt.name, ti.name);
      ASSERT_EQ(rt.length, ti.byte_size());
      EXPECT_EQ(std::memcmp(dest.data() + rt.offset,
                            file.data() + st_header->data_offset + ti.data_begin, rt.length),
                0)
          << rt.name;
      // The checksum is the file's tensor bytes' XXH3-64, reported and in the header.
      EXPECT_EQ(checksums[k], layout::tensor_checksum(file_tensor(file, *st_header, k))) << rt.name;
      EXPECT_EQ(back->tensors[k].checksum, checksums[k]) << rt.name;
      with_checksums.tensors[k].checksum = checksums[k];
      for (std::uint64_t b = 0; b < rt.length; ++b) {
        covered[rt.offset + b] = true;
        if (t == layout::DType::BOOL) {
          ASSERT_LE(std::to_integer<int>(dest[rt.offset + b]), 1);
        }
      }
    }
    // Every byte that is neither header nor tensor is zero padding.
    std::vector<std::byte> header(layout.header_bytes);
    layout::write_layout_header(with_checksums, header);
    EXPECT_EQ(std::memcmp(dest.data(), header.data(), header.size()), 0);
    for (std::size_t b = layout.header_bytes; b < dest.size(); ++b) {
      if (!covered[b]) {
        ASSERT_EQ(dest[b], std::byte{0}) << "byte " << b;
      }
    }
  }
}

TEST_F(AdapterFiles, FixtureBytesDependOnTheSeedOnly) {
  const std::string a = testing::read_file(paths_in(make(small_spec(layout::DType::F32, 1), "a")).weights);
  const std::string b = testing::read_file(paths_in(make(small_spec(layout::DType::F32, 1), "b")).weights);
  const std::string c = testing::read_file(paths_in(make(small_spec(layout::DType::F32, 2), "c")).weights);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
}

TEST_F(AdapterFiles, FixtureHeaderIsPaddedAndCarriesFormatMetadata) {
  auto h = header_of(paths_in(make(small_spec(layout::DType::F16))).weights);
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_EQ(h->header_len % 8, 0u);
  EXPECT_EQ(h->metadata.at("format"), "pt");
  EXPECT_EQ(h->tensors[0].name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(h->tensors[0].shape, (std::vector<std::uint64_t>{3, 5}));
  EXPECT_EQ(h->tensors[1].shape, (std::vector<std::uint64_t>{5, 3}));
}

TEST_F(AdapterFiles, AFillSplitIntoPartsAndSealedWritesWhatAWholeFillWrites) {
  AdapterSpec spec = small_spec(layout::DType::F32);
  spec.layers = 5;  // 20 tensors
  const layout::AdapterPaths paths = paths_in(make(spec));
  const layout::AdapterFds files = open_files(paths);
  auto probe = probe_adapter(paths, files);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  const layout::ResidentLayout& layout = probe->layout;
  std::vector<std::byte> whole(layout.total_bytes, std::byte{0xCC});
  std::vector<std::uint64_t> whole_sums;
  ASSERT_TRUE(fill_all(paths, files, layout, whole, &whole_sums).ok());

  std::vector<std::byte> split(layout.total_bytes, std::byte{0xCC});
  layout::ResidentLayout sealed = layout;
  for (const layout::FillPart& part : layout::split_fill(layout, 3)) {
    const auto [begin, end] = layout::part_region(layout, part);
    std::vector<std::byte> before(split);
    std::vector<std::uint64_t> sums;
    ASSERT_TRUE(fill_adapter(paths, files, layout, split, part, &sums).ok());
    ASSERT_EQ(sums.size(), part.end - part.begin);
    for (std::size_t k = part.begin; k < part.end; ++k) {
      EXPECT_EQ(sums[k - part.begin], whole_sums[k]);
      sealed.tensors[k].checksum = sums[k - part.begin];
    }
    // A part writes only its region, and never the header: the seal does.
    for (std::size_t b = 0; b < split.size(); ++b) {
      if (b < std::max<std::uint64_t>(begin, layout.header_bytes) || b >= end) {
        ASSERT_EQ(split[b], before[b]) << "byte " << b << " outside the part's region";
      }
    }
  }
  layout::write_layout_header(sealed, split);
  EXPECT_TRUE(split == whole);
}

TEST_F(AdapterFiles, FillAfterAnInPlaceRewriteWithADifferentLayoutIsFileChanged) {
  const std::string dir = make(small_spec(layout::DType::F16));
  const layout::AdapterFds files = open_files(paths_in(dir));
  auto probe = probe_adapter(paths_in(dir), files);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  AdapterSpec bigger = small_spec(layout::DType::F16);
  bigger.rank = 4;
  const std::string other = make(bigger, "bigger");
  // Rewritten in place (O_TRUNC, same inode): the open descriptors see it.
  testing::write_file(paths_in(dir).config, testing::read_file(paths_in(other).config));
  testing::write_file(paths_in(dir).weights, testing::read_file(paths_in(other).weights));
  std::vector<std::byte> dest(probe->layout.total_bytes * 2);
  const Status s = fill_all(paths_in(dir), files, probe->layout, dest);
  EXPECT_EQ(s.code(), Errc::file_changed) << s.to_string();
  EXPECT_NE(s.message().find(layout::kWeightsFileName), std::string::npos) << s.message();
}

TEST_F(AdapterFiles, FillAfterAnAtomicRenameStillReadsTheVersionProbed) {
  const std::string dir = make(small_spec(layout::DType::F16, 1));
  const std::string first = testing::read_file(paths_in(dir).weights);
  const layout::AdapterFds files = open_files(paths_in(dir));
  auto probe = probe_adapter(paths_in(dir), files);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  // write_adapter renames new files over the old ones: same layout, other bytes.
  ASSERT_TRUE(fixture::write_adapter(dir, small_spec(layout::DType::F16, 2)).ok());
  ASSERT_NE(testing::read_file(paths_in(dir).weights), first);
  std::vector<std::byte> dest(probe->layout.total_bytes);
  ASSERT_TRUE(fill_all(paths_in(dir), files, probe->layout, dest).ok());
  auto h = header_of(paths_in(dir).weights);
  ASSERT_TRUE(h.ok());
  for (std::size_t k = 0; k < probe->layout.tensors.size(); ++k) {
    const layout::ResidentTensor& t = probe->layout.tensors[k];
    const auto want = file_tensor(first, *h, k);
    EXPECT_EQ(std::memcmp(dest.data() + t.offset, want.data(), t.length), 0) << t.name;
  }
}

TEST_F(AdapterFiles, FillAfterAnInPlaceConfigRewriteIsFileChanged) {
  const std::string dir = make(small_spec(layout::DType::F16));
  const layout::AdapterFds files = open_files(paths_in(dir));
  auto probe = probe_adapter(paths_in(dir), files);
  ASSERT_TRUE(probe.ok());
  testing::write_file(paths_in(dir).config,
                      R"({"peft_type":"LORA","r":3,"lora_alpha":99,"target_modules":"q_proj"})");
  std::vector<std::byte> dest(probe->layout.total_bytes);
  EXPECT_EQ(fill_all(paths_in(dir), files, probe->layout, dest).code(), Errc::file_changed);
}

TEST_F(AdapterFiles, FillIntoATooSmallRangeFailsWithoutWriting) {
  const std::string dir = make(small_spec(layout::DType::U8));
  const layout::AdapterFds files = open_files(paths_in(dir));
  auto probe = probe_adapter(paths_in(dir), files);
  ASSERT_TRUE(probe.ok());
  std::vector<std::byte> dest(probe->layout.total_bytes - 1, std::byte{0xCC});
  EXPECT_EQ(fill_all(paths_in(dir), files, probe->layout, dest).code(), Errc::internal);
  EXPECT_EQ(dest[0], std::byte{0xCC});
}

TEST_F(AdapterFiles, ProbeReadsWithPreadAndLeavesTheSharedFileOffsetAlone) {
  // Several workers read the same open files at once: none may move the offset.
  const std::string dir = make(small_spec(layout::DType::F16));
  const layout::AdapterFds files = open_files(paths_in(dir));
  ASSERT_EQ(::lseek(files.config.get(), 5, SEEK_SET), 5);
  ASSERT_EQ(::lseek(files.weights.get(), 9, SEEK_SET), 9);
  ASSERT_TRUE(probe_adapter(paths_in(dir), files).ok());
  EXPECT_EQ(::lseek(files.config.get(), 0, SEEK_CUR), 5);
  EXPECT_EQ(::lseek(files.weights.get(), 0, SEEK_CUR), 9);
}

TEST_F(AdapterFiles, OpeningASymlinkedFileByPathIsRefused) {
  const std::string dir = make(small_spec(layout::DType::F16));
  const layout::AdapterPaths p = paths_in(dir);
  ASSERT_EQ(::rename(p.weights.c_str(), (tmp_ / "real.safetensors").c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ / "real.safetensors").c_str(), p.weights.c_str()), 0);
  auto r = open_adapter_files(p);
  EXPECT_EQ(r.code(), Errc::file_unreadable);
  EXPECT_NE(r.status().message().find(p.weights), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("symbolic link"), std::string::npos);
}

TEST_F(AdapterFiles, ADirectoryDescriptorInPlaceOfAFileIsUnreadable) {
  const std::string dir = make(small_spec(layout::DType::F16));
  const layout::AdapterPaths p = paths_in(dir);
  layout::AdapterFds files = open_files(p);
  files.weights.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto r = probe_adapter(p, files);
  EXPECT_EQ(r.code(), Errc::file_unreadable);
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos)
      << r.status().message();
}

TEST_F(AdapterFiles, AFifoDescriptorInPlaceOfTheConfigIsUnreadableWithoutBlocking) {
  const std::string dir = make(small_spec(layout::DType::F16));
  const layout::AdapterPaths p = paths_in(dir);
  const std::string fifo = tmp_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  layout::AdapterFds files = open_files(p);
  files.config.reset(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  EXPECT_EQ(probe_adapter(p, files).code(), Errc::file_unreadable);
}

TEST_F(AdapterFiles, MissingConfigIsUnreadableNamingTheFile) {
  const std::string dir = make(small_spec(layout::DType::F16));
  ASSERT_EQ(::unlink(paths_in(dir).config.c_str()), 0);
  auto r = open_adapter_files(paths_in(dir));
  EXPECT_EQ(r.code(), Errc::file_unreadable);
  EXPECT_NE(r.status().message().find("adapter_config.json"), std::string::npos)
      << r.status().message();
}

TEST_F(AdapterFiles, ConfigOverTheSizeLimitIsALimit) {
  const std::string dir = make(small_spec(layout::DType::F16));
  testing::write_file(paths_in(dir).config, std::string(kMaxConfigBytes + 1, ' '));
  auto r = probe_paths(paths_in(dir));
  EXPECT_EQ(r.code(), Errc::limit_exceeded);
  EXPECT_NE(r.status().message().find("limit"), std::string::npos) << r.status().message();
}

TEST_F(AdapterFiles, InvalidConfigIsReportedThroughProbe) {
  const std::string dir = make(small_spec(layout::DType::F16));
  testing::write_file(paths_in(dir).config, R"({"peft_type":"IA3"})");
  EXPECT_EQ(probe_paths(paths_in(dir)).code(), Errc::config_missing_field);
  testing::write_file(paths_in(dir).config,
                      R"({"peft_type":"IA3","r":1,"lora_alpha":1,"target_modules":"x"})");
  EXPECT_EQ(probe_paths(paths_in(dir)).code(), Errc::config_unsupported_peft_type);
}

TEST_F(AdapterFiles, MalformedWeightsAreReportedThroughProbe) {
  const std::string dir = make(small_spec(layout::DType::F16));
  ASSERT_TRUE(
      fixture::write_raw_safetensors(
          paths_in(dir).weights, R"({"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "abc")
          .ok());
  auto r = probe_paths(paths_in(dir));
  EXPECT_EQ(r.code(), Errc::st_trailing_bytes);
  EXPECT_NE(r.status().message().find(paths_in(dir).weights), std::string::npos);
}

TEST_F(AdapterFiles, AdapterWithoutTensorsIsEmpty) {
  const std::string dir = make(small_spec(layout::DType::F16));
  ASSERT_TRUE(
      fixture::write_raw_safetensors(paths_in(dir).weights, R"({"__metadata__":{}})", "").ok());
  auto r = probe_paths(paths_in(dir));
  EXPECT_EQ(r.code(), Errc::adapter_empty);
  EXPECT_NE(r.status().message().find(layout::kWeightsFileName), std::string::npos);
}

}  // namespace
}  // namespace genomed::format

namespace genomed::format {
namespace {

layout::ResidentLayout layout_of_sizes(const std::vector<std::uint64_t>& sizes) {
  layout::ResidentLayout l;
  l.header_bytes = 128;
  std::uint64_t at = l.header_bytes;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    l.tensors.push_back({"t" + std::to_string(i), layout::DType::U8, {sizes[i]}, at, sizes[i]});
    at += (sizes[i] + 63) / 64 * 64;
  }
  l.total_bytes = at;
  return l;
}

TEST(SplitFill, PartsCoverEveryTensorOnceAndTheirRegionsTileTheLayout) {
  const layout::ResidentLayout l = layout_of_sizes({640, 64, 6400, 128, 64, 3200, 64});
  for (std::size_t parts = 1; parts <= 9; ++parts) {
    const auto split = layout::split_fill(l, parts);
    ASSERT_FALSE(split.empty());
    EXPECT_LE(split.size(), std::min(parts, l.tensors.size()));
    std::size_t next = 0;
    std::uint64_t covered = 0;
    for (const auto& p : split) {
      EXPECT_EQ(p.begin, next);
      EXPECT_LT(p.begin, p.end);
      next = p.end;
      const auto [first, last] = layout::part_region(l, p);
      EXPECT_EQ(first, covered);
      covered = last;
    }
    EXPECT_EQ(next, l.tensors.size());
    EXPECT_EQ(covered, l.total_bytes);
  }
}

TEST(SplitFill, PartsAreBalancedByBytes) {
  const layout::ResidentLayout l = layout_of_sizes(std::vector<std::uint64_t>(64, 4096));
  const auto split = layout::split_fill(l, 2);
  ASSERT_EQ(split.size(), 2u);
  EXPECT_EQ(split[0].end, 32u);
}

}  // namespace
}  // namespace genomed::format
