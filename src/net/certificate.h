// X.509 certificates for node-to-node TLS.
//
// Nodes authenticate each other by key pinning, not by a certificate
// authority: each node presents a self-signed certificate, and a peer is node
// i iff the certificate's public key equals the genesis key of node i and the
// certificate's signature verifies under that same key. Validity dates are
// written (X.509 requires them) but not enforced: the pinned key is the
// identity, and a node must not drop out of the cluster because its
// certificate aged. Functions here are pure and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/status.h"
#include "crypto/keys.h"

namespace custos::net {

// Longest certificate PEM text accepted; ours are well under 1 KiB.
inline constexpr size_t kCertificatePemBytesMax = 16 * 1024;
// X.509 upper bound for a common name (RFC 5280 ub-common-name).
inline constexpr size_t kCommonNameBytesMax = 64;
// Longest validity requested from self_signed_certificate_pem (100 years).
inline constexpr int kCertificateValidDaysMax = 36500;

// Self-signed X.509 v3 certificate (PEM) for `key` (Ed25519, or ES256 with
// SHA-256), subject = issuer = CN=common_name, valid from one day ago (clock
// skew) for valid_days. kInvalidArgument for an empty or too long name or
// valid_days outside [1, kCertificateValidDaysMax].
Result<std::string> self_signed_certificate_pem(const crypto::PrivateKey& key,
                                                const std::string& common_name, int valid_days);

// The public key inside a PEM certificate (kMalformed if not a certificate).
// Does not check the certificate's signature; see self_signed_certificate_key.
Result<crypto::PublicKey> certificate_public_key(std::string_view certificate_pem);

// The DER bytes of exactly one PEM "CERTIFICATE" block (kMalformed otherwise).
Result<Bytes> certificate_der(std::string_view certificate_pem);

// The public key of a DER certificate whose signature verifies under that
// same key. kMalformed: not a certificate (or trailing bytes); kBadSignature:
// not validly self-signed; kInvalidArgument: a key type custos does not use.
Result<crypto::PublicKey> self_signed_certificate_key(ByteView certificate_der);

}  // namespace custos::net
