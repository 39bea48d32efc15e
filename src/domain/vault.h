// The vault: one node's off-ledger store of clinical content (domain/clinical.h;
// docs/domain.md, "Patient data"; docs/operations.md, "The vault").
//
// Layout under the node's data directory:
//   vault.key                     the vault master key (hex, mode 0600): the node's secret
//   vault/LOCK                    flock(2) target: one writer at a time, across threads and
//   processes vault/erasures                last log index the erasure sweep has looked at
//   vault/p/<hex>/key             the patient's 32-byte key, wrapped under the master key
//   vault/p/<hex>/r/<hex(record)> one record: salt, media type and content, encrypted
//   vault/p/<hex>/erased          tombstone: the patient's content was destroyed
// (<hex> is the pseudonym's hex digits.) Every file is written to a
// temporary name, fsynced, renamed, and its directory fsynced.
//
// Encryption: XChaCha20-Poly1305 (libsodium crypto_aead_xchacha20poly1305_ietf)
// with a random 24-byte nonce per write. The additional data binds each
// ciphertext to its place: a wrapped key to its patient, a record to its
// patient and record id, so a file copied to another patient or record does
// not decrypt.
//
// Erasure (crypto-shredding) writes the tombstone, destroys the patient's
// wrapped key (overwritten with zeros, fsynced, unlinked) and deletes the
// records. The salts are inside the encrypted records, so the commitments on
// the ledger can no longer be tested against guessed content either.
//
// The vault is per node and not part of the replicated state: each node
// holds what clients gave it. Thread-safe: every operation takes the vault
// lock (shared for reads, exclusive for writes), so several Vault objects on
// one directory, in one process or several, are safe too.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "core/bytes.h"
#include "core/status.h"

namespace custos::ledger {
class Ledger;
}

namespace custos::domain {

// Bytes of clinical content in one record.
inline constexpr size_t kVaultContentBytesMax = 1 << 20;
inline constexpr size_t kVaultKeyBytes = 32;
inline constexpr const char* kVaultDirName = "vault";
inline constexpr const char* kVaultMasterKeyName = "vault.key";
// How often a running node looks for erasures registered through others.
inline constexpr uint64_t kVaultSweepIntervalMs = 2000;

struct VaultRecord {
  std::string content_type;  // media type
  Bytes salt;                // kSaltBytes
  Bytes content;             // at most kVaultContentBytesMax
};

// What a lookup found.
enum class VaultLookup { kFound, kMissing, kErased };

// A key that zeroes itself when it goes away.
class SecretKey {
 public:
  SecretKey() = default;
  ~SecretKey();
  SecretKey(const SecretKey& other) = default;
  SecretKey& operator=(const SecretKey& other) = default;
  std::array<uint8_t, kVaultKeyBytes> bytes{};
};

class Vault {
 public:
  // Opens the vault of the node whose data directory is `data_dir`,
  // creating the directory and the master key on first use. Refuses a
  // master key file readable by others than its owner (kPolicy), of the
  // wrong size (kCorruption), and a vault that holds patient keys but has
  // lost its master key (kCorruption: generating a new one would make every
  // record unreadable).
  static Result<Vault> open(const std::string& data_dir);

  // Stores one record. Storing the same record again is a no-op (a retry
  // after a crash); a different one under the same id is kConflict.
  // kConflict too once the patient's content was erased; kTooLarge above
  // kVaultContentBytesMax or kRecordsPerPatientMax; kInvalidArgument for a
  // bad pseudonym, record id or salt.
  Status put(const std::string& patient, const std::string& record, const VaultRecord& r) const;

  // kFound fills `out`. kCorruption when a file fails to decrypt (tampered,
  // moved, or under another key).
  Result<VaultLookup> get(const std::string& patient, const std::string& record,
                          VaultRecord* out) const;
  Result<bool> erased(const std::string& patient) const;
  // Whether `patient` may receive one more record here.
  Status check_capacity(const std::string& patient) const;

  // Destroys the patient's key and records and leaves a tombstone.
  // Idempotent: erasing again (or finishing an erasure a crash interrupted)
  // succeeds.
  Status erase(const std::string& patient) const;

  // Applies every record-erasure registered on `ledger` since the last call
  // (the log position is kept in vault/erasures), so an erasure registered
  // through another node, or registered here just before a crash, destroys
  // this node's copy too. Returns how many erasures it applied.
  Result<size_t> apply_erasures(const ledger::Ledger& ledger) const;

  const std::string& dir() const { return dir_; }

 private:
  Vault(std::string dir, SecretKey master) : dir_(std::move(dir)), master_(std::move(master)) {}

  std::string patient_dir(const std::string& patient) const;
  Result<SecretKey> load_patient_key(const std::string& patient) const;
  Result<SecretKey> create_patient_key(const std::string& patient) const;
  Result<size_t> count_records(const std::string& patient) const;
  Status store_record(const std::string& patient, const std::string& record,
                      const VaultRecord& r) const;
  Result<VaultRecord> read_record(const std::string& patient, const std::string& record,
                                  const Bytes& sealed) const;
  Status destroy(const std::string& patient) const;

  std::string dir_;
  SecretKey master_;
};

// Applies the erasures registered on the ledger to the node's vault: once
// when made (so an erasure registered just before a crash is finished on
// restart) and then every interval_ms until destroyed (so an erasure
// registered through another node reaches this one's copy). Failures are
// logged and retried at the next interval.
class VaultSweeper {
 public:
  explicit VaultSweeper(const ledger::Ledger& ledger, uint64_t interval_ms = kVaultSweepIntervalMs);
  ~VaultSweeper();
  VaultSweeper(const VaultSweeper&) = delete;
  VaultSweeper& operator=(const VaultSweeper&) = delete;

 private:
  void sweep();
  void run();

  const ledger::Ledger& ledger_;
  const uint64_t interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace custos::domain
