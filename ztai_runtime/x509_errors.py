"""What `cryptography` raises for a certificate that does not parse, or parses only in part.

Loading a certificate is lazy: a damaged extension, version or algorithm surfaces only when that
part is read. The attestation chain and the mTLS truststore both read every part they use at
load time and catch these, so damage is refused where the certificate enters.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

CERTIFICATE_ERRORS = (
    ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType, UnsupportedAlgorithm)
