// The vault (domain/vault.h): round trips, the master key file, what the
// AEAD refuses (wrong key, moved files, tampered nonce or ciphertext), that an
// erased patient's content cannot be recovered even from kept ciphertext,
// the limits, and concurrent writers.
#include "domain/vault.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/file.h"
#include "domain/clinical.h"
#include "domain/payload.h"
#include "support/temp_dir.h"

namespace custos::domain {
namespace {

namespace fs = std::filesystem;

const std::string kPatient = "pseudonym:0123456789abcdef0123456789abcdef";
const std::string kOther = "pseudonym:fedcba9876543210";

Bytes bytes_of(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

VaultRecord record(std::string_view content, uint8_t salt_byte = 7) {
  return VaultRecord{"text/plain", Bytes(kSaltBytes, salt_byte), bytes_of(content)};
}

// Every file under `dir`, read whole.
std::vector<Bytes> all_files(const std::string& dir) {
  std::vector<Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(read_file(e.path().string()).value());
  }
  return out;
}

bool contains(const Bytes& haystack, ByteView needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

class VaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto v = Vault::open(dir_.path());
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    vault_.emplace(std::move(v).value());
  }
  std::string patient_dir(const std::string& p) const {
    return dir_.path() + "/vault/p/" + p.substr(kPseudonymPrefix.size());
  }
  std::string record_path(const std::string& p, const std::string& r) const {
    return patient_dir(p) + "/r/" + to_hex(as_view(r));
  }
  Result<VaultLookup> get(const std::string& p, const std::string& r, VaultRecord* out) {
    return vault_->get(p, r, out);
  }

  testutil::TempDir dir_{"custos-vault"};
  std::optional<Vault> vault_;
};

TEST_F(VaultTest, RoundTripAndMissingRecords) {
  ASSERT_TRUE(vault_->put(kPatient, "note-1", record("blood pressure 120/80")).ok());
  VaultRecord out;
  auto found = get(kPatient, "note-1", &out);
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  EXPECT_EQ(*found, VaultLookup::kFound);
  EXPECT_EQ(out.content, bytes_of("blood pressure 120/80"));
  EXPECT_EQ(out.content_type, "text/plain");
  EXPECT_EQ(out.salt, Bytes(kSaltBytes, 7));
  EXPECT_EQ(*get(kPatient, "note-2", &out), VaultLookup::kMissing);
  EXPECT_EQ(*get(kOther, "note-1", &out), VaultLookup::kMissing);
  // Nothing of the content or the salt is on disk in the clear.
  for (const Bytes& f : all_files(dir_.path())) {
    EXPECT_FALSE(contains(f, as_view("120/80")));
  }
  // A second Vault on the directory reads the same master key.
  auto again = Vault::open(dir_.path());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again->get(kPatient, "note-1", &out), VaultLookup::kFound);
}

TEST_F(VaultTest, PutAgainIsANoOpButOtherContentIsAConflict) {
  ASSERT_TRUE(vault_->put(kPatient, "note-1", record("a")).ok());
  EXPECT_TRUE(vault_->put(kPatient, "note-1", record("a")).ok());
  Status other = vault_->put(kPatient, "note-1", record("b"));
  EXPECT_EQ(other.code(), ErrorCode::kConflict) << other.to_string();
  Status other_salt = vault_->put(kPatient, "note-1", record("a", 8));
  EXPECT_EQ(other_salt.code(), ErrorCode::kConflict);
  VaultRecord out;
  ASSERT_EQ(*get(kPatient, "note-1", &out), VaultLookup::kFound);
  EXPECT_EQ(out.content, bytes_of("a"));
}

TEST_F(VaultTest, MasterKeyFileIsPrivateHexAndChecked) {
  const std::string path = dir_.path() + "/vault.key";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Bytes text = read_file(path).value();
  EXPECT_EQ(text.size(), 65u);  // 64 hex digits and a newline
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto loose = Vault::open(dir_.path());
  ASSERT_FALSE(loose.ok());
  EXPECT_EQ(loose.status().code(), ErrorCode::kPolicy);
  EXPECT_NE(loose.status().message().find("chmod 600"), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_TRUE(write_file_atomic(path, as_view("not hex\n"), 0600).ok());
  auto garbled = Vault::open(dir_.path());
  ASSERT_FALSE(garbled.ok());
  EXPECT_EQ(garbled.status().code(), ErrorCode::kCorruption);
}

TEST_F(VaultTest, LostMasterKeyIsNotSilentlyReplaced) {
  ASSERT_TRUE(vault_->put(kPatient, "note-1", record("a")).ok());
  fs::remove(dir_.path() + "/vault.key");
  auto v = Vault::open(dir_.path());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(v.status().message().find("restore it"), std::string::npos);
}

TEST_F(VaultTest, AnotherMasterKeyCannotOpenTheRecords) {
  ASSERT_TRUE(vault_->put(kPatient, "note-1", record("a")).ok());
  const std::string other(64, 'a');
  ASSERT_TRUE(write_file_atomic(dir_.path() + "/vault.key", as_view(other + "\n"), 0600).ok());
  auto v = Vault::open(dir_.path());
  ASSERT_TRUE(v.ok());
  VaultRecord out;
  auto r = v->get(kPatient, "note-1", &out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  EXPECT_TRUE(out.content.empty());
}

TEST_F(VaultTest, FilesMovedToAnotherRecordOrPatientDoNotDecrypt) {
  ASSERT_TRUE(vault_->put(kPatient, "note-1", record("a")).ok());
  ASSERT_TRUE(vault_->put(kPatient, "note-2", record("b")).ok());
  ASSERT_TRUE(vault_->put(kOther, "note-1", record("c")).ok());
  // Record 1's file under record 2's name: the additional data names the record.
  fs::copy_file(record_path(kPatient, "note-1"), record_path(kPatient, "note-2"),
                fs::copy_options::overwrite_existing);
  VaultRecord out;
  auto moved = get(kPatient, "note-2", &out);
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.status().code(), ErrorCode::kCorruption);
  // One patient's wrapped key given to another: it names its patient too.
  fs::copy_file(patient_dir(kPatient) + "/key", patient_dir(kOther) + "/key",
                fs::copy_options::overwrite_existing);
  auto swapped = get(kOther, "note-1", &out);
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.status().code(), ErrorCode::kCorruption);
}

TEST_F(VaultTest, TamperedNonceCiphertextOrLengthIsRefused) {
  ASSERT_TRUE(vault_->put(kPatient, "note-1", record("some clinical text")).ok());
  const std::string path = record_path(kPatient, "note-1");
  const Bytes good = read_file(path).value();
  // [version][24-byte nonce][ciphertext and 16-byte tag]
  for (size_t at : {size_t{0}, size_t{1}, size_t{24}, size_t{30}, good.size() - 1}) {
    Bytes bad = good;
    bad[at] ^= 0x01;
    ASSERT_TRUE(write_file_atomic(path, bad).ok());
    VaultRecord out;
    auto r = get(kPatient, "note-1", &out);
    ASSERT_FALSE(r.ok()) << "flipped byte " << at;
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  }
  ASSERT_TRUE(write_file_atomic(path, ByteView(good.data(), 20)).ok());
  VaultRecord out;
  EXPECT_EQ(get(kPatient, "note-1", &out).status().code(), ErrorCode::kCorruption);
  ASSERT_TRUE(write_file_atomic(path, good).ok());
  EXPECT_EQ(*get(kPatient, "note-1", &out), VaultLookup::kFound);
}

// The patient key, unwrapped here by hand from the documented format, is
// nowhere on disk after the erasure, and the kept ciphertext (restored in
// place) cannot be read by anyone.
TEST_F(VaultTest, ErasureMakesContentUnrecoverableEvenWithTheCiphertext) {
  ASSERT_TRUE(vault_->put(kPatient, "note-1", record("diagnosis: X")).ok());
  ASSERT_TRUE(vault_->put(kOther, "note-1", record("kept")).ok());
  const Bytes sealed_record = read_file(record_path(kPatient, "note-1")).value();
  const Bytes wrapped = read_file(patient_dir(kPatient) + "/key").value();
  Bytes master =
      from_hex(as_string_view(read_file(dir_.path() + "/vault.key").value()).substr(0, 64)).value();
  std::string ad = "custos-vault/patient-key/v1";
  ad.push_back('\0');
  ad += kPatient;
  ad.push_back('\0');
  ad.push_back('\0');
  Bytes patient_key(32);
  unsigned long long n = 0;
  ASSERT_EQ(crypto_aead_xchacha20poly1305_ietf_decrypt(
                patient_key.data(), &n, nullptr, wrapped.data() + 25, wrapped.size() - 25,
                reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), wrapped.data() + 1,
                master.data()),
            0);

  ASSERT_TRUE(vault_->erase(kPatient).ok());
  VaultRecord out;
  EXPECT_EQ(*get(kPatient, "note-1", &out), VaultLookup::kErased);
  EXPECT_FALSE(file_exists(patient_dir(kPatient) + "/key"));
  EXPECT_FALSE(file_exists(record_path(kPatient, "note-1")));
  for (const Bytes& f : all_files(dir_.path())) {
    EXPECT_FALSE(contains(f, patient_key));
    EXPECT_FALSE(contains(f, wrapped));
  }
  // Someone kept the ciphertext and puts it back, tombstone removed: the
  // vault has no key for it.
  ASSERT_TRUE(write_file_atomic(record_path(kPatient, "note-1"), sealed_record).ok());
  fs::remove(patient_dir(kPatient) + "/erased");
  auto r = get(kPatient, "note-1", &out);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  // Erasing one patient leaves the others alone; erasing twice is fine.
  EXPECT_EQ(*get(kOther, "note-1", &out), VaultLookup::kFound);
  EXPECT_TRUE(vault_->erase(kPatient).ok());
  EXPECT_TRUE(vault_->erase(kPatient).ok());
}

TEST_F(VaultTest, NothingIsStoredForAnErasedPatient) {
  ASSERT_TRUE(vault_->erase(kPatient).ok());  // erased before this node saw any content
  Status s = vault_->put(kPatient, "note-1", record("a"));
  EXPECT_EQ(s.code(), ErrorCode::kConflict);
  EXPECT_EQ(vault_->check_capacity(kPatient).code(), ErrorCode::kConflict);
  EXPECT_TRUE(*vault_->erased(kPatient));
  EXPECT_FALSE(*vault_->erased(kOther));
  EXPECT_FALSE(file_exists(patient_dir(kPatient) + "/key"));
}

TEST_F(VaultTest, InputsAreCheckedAndLimitsHold) {
  EXPECT_EQ(vault_->put("John Smith", "note-1", record("a")).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(vault_->put(kPatient, "../escape", record("a")).code(), ErrorCode::kInvalidArgument);
  VaultRecord short_salt = record("a");
  short_salt.salt.resize(31);
  EXPECT_EQ(vault_->put(kPatient, "note-1", short_salt).code(), ErrorCode::kInvalidArgument);
  VaultRecord bad_type = record("a");
  bad_type.content_type = "Text/Plain";
  EXPECT_EQ(vault_->put(kPatient, "note-1", bad_type).code(), ErrorCode::kInvalidArgument);
  VaultRecord big = record("");
  big.content.assign(kVaultContentBytesMax + 1, 'x');
  EXPECT_EQ(vault_->put(kPatient, "note-1", big).code(), ErrorCode::kTooLarge);
  big.content.resize(kVaultContentBytesMax);
  EXPECT_TRUE(vault_->put(kPatient, "big", big).ok());
  VaultRecord out;
  EXPECT_EQ(get("pseudonym:XYZ", "note-1", &out).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(vault_->erase("nobody").code(), ErrorCode::kInvalidArgument);
}

TEST_F(VaultTest, RecordsPerPatientAreBounded) {
  ASSERT_TRUE(vault_->put(kPatient, "r-0", record("a")).ok());
  // Fill the patient's directory up to the limit with placeholder files
  // (what is counted); sealing 4096 real records would only be slower.
  for (uint64_t i = 1; i < kRecordsPerPatientMax; ++i) {
    std::ofstream(record_path(kPatient, "fill-" + std::to_string(i))) << "x";  // no fsync: fast
  }
  EXPECT_EQ(vault_->check_capacity(kPatient).code(), ErrorCode::kTooLarge);
  Status s = vault_->put(kPatient, "one-more", record("a"));
  EXPECT_EQ(s.code(), ErrorCode::kTooLarge) << s.to_string();
  EXPECT_TRUE(vault_->put(kPatient, "r-0", record("a")).ok());  // a retry still succeeds
  EXPECT_TRUE(vault_->check_capacity(kOther).ok());
}

TEST_F(VaultTest, ConcurrentWritersShareOnePatientKey) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread with its own Vault object, as separate processes would.
      auto v = Vault::open(dir_.path());
      if (!v.ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!v->put(kPatient, id, record(id)).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      VaultRecord out;
      auto r = get(kPatient, id, &out);
      ASSERT_TRUE(r.ok()) << id << ": " << r.status().to_string();
      EXPECT_EQ(*r, VaultLookup::kFound);
      EXPECT_EQ(out.content, bytes_of(id));
    }
  }
}

TEST(RecordCommitmentTest, IsSha256OfSaltThenContent) {
  const Bytes salt(kSaltBytes, 1);
  const Hash256 c = record_commitment(salt, as_view("content"));
  Bytes joined = salt;
  joined.insert(joined.end(), {'c', 'o', 'n', 't', 'e', 'n', 't'});
  Hash256 expected;
  crypto_hash_sha256(expected.data(), joined.data(), joined.size());
  EXPECT_EQ(c, expected);
  EXPECT_NE(record_commitment(Bytes(kSaltBytes, 2), as_view("content")), c);
}

}  // namespace
}  // namespace custos::domain
