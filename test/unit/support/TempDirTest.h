//===- TempDirTest.h - Test fixture owning a temporary directory -*- C++ -*-===//
//
// The fixture of every unit test that writes files: a fresh directory made
// with mkdtemp under $TMPDIR (or /tmp) before each test and removed after.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TEST_UNIT_SUPPORT_TEMPDIRTEST_H
#define QNT_TEST_UNIT_SUPPORT_TEMPDIRTEST_H

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace qnt::testing {

class TempDirTest : public ::testing::Test {
protected:
  /// `prefix` names the directory ("<prefix>-XXXXXX"), so that a leftover
  /// one says which test made it.
  explicit TempDirTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    const char *tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix_ + "-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    ASSERT_NE(::mkdtemp(buf.data()), nullptr) << std::strerror(errno);
    dir_ = buf.data();
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  /// `name` inside the directory.
  std::string pathOf(const std::string &name) const {
    return dir_ + "/" + name;
  }

  std::string dir_;

private:
  std::string prefix_;
};

} // namespace qnt::testing

#endif // QNT_TEST_UNIT_SUPPORT_TEMPDIRTEST_H
