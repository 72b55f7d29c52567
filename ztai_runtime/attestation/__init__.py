"""Nitro Enclaves attestation: documents (verify), the NSM (produce), KMS Recipient (consume).

    document.py   parse and verify attestation documents (COSE_Sign1 ES384, chain to a given root)
    nsm.py        AttestationSource protocol and the /dev/nsm implementation
    cms.py        open KMS CiphertextForRecipient (CMS EnvelopedData, RSA-OAEP-SHA256, AES-256-CBC)
    recipient.py  RecipientKey and AttestedKmsUnwrapper (a weights DataKeyUnwrapper)
"""

from ztai_runtime.attestation.cms import CmsError, open_enveloped_data
from ztai_runtime.attestation.document import (
    AttestationDocument,
    AttestationError,
    pcrs_all_zero,
    verify_attestation_document,
)
from ztai_runtime.attestation.nsm import AttestationSource, NsmAttestationSource, NsmError
from ztai_runtime.attestation.recipient import AttestedKmsUnwrapper, RecipientKey

__all__ = [
    "AttestationDocument", "AttestationError", "AttestationSource", "AttestedKmsUnwrapper", "CmsError",
    "NsmAttestationSource", "NsmError", "RecipientKey", "open_enveloped_data", "pcrs_all_zero",
    "verify_attestation_document",
]
