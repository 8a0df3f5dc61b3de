// A private directory under $TMPDIR, removed with everything in it at scope exit.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace orderflow::testing {

class TempDir {
 public:
  TempDir() {
    auto base = std::filesystem::temp_directory_path() / "orderflow-test-XXXXXX";
    std::string pattern = base.string();
    char* made = ::mkdtemp(pattern.data());
    path_ = made ? made : throw std::runtime_error("mkdtemp failed");
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace orderflow::testing
