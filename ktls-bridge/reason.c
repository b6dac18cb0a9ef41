// SPDX-License-Identifier: MIT
/* reason.c - fixed texts for modes and fallback reasons, and noting a
 * direction's reason with its errno and detail. */
#include "config.h"

#include "internal.h"

static const char *const reason_text[KTLS_R__COUNT] = {
	[KTLS_R_NONE] = "offloaded",
	[KTLS_R_NOT_OFFERED] = "libssl did not offer keys for this direction "
			       "(OpenSSL before 3.2 never offers TLS 1.3 receive)",
	[KTLS_R_POLICY_OFF] = "offload disabled by policy (offload = off)",
	[KTLS_R_POLICY_DIRECTION] = "this direction disabled by policy",
	[KTLS_R_POLICY_CIPHER] = "cipher not allowed by policy",
	[KTLS_R_TLS13_NO_REKEY] = "kernel cannot re-key TLS 1.3 (tls13 = auto keeps it in userspace)",
	[KTLS_R_TLS13_NEVER] = "TLS 1.3 offload disabled by policy (tls13 = never)",
	[KTLS_R_ULP_UNAVAILABLE] = "kernel TLS unavailable: the \"tls\" ULP was refused "
				   "(load the tls kernel module)",
	[KTLS_R_CIPHER_UNSUPPORTED] = "kernel does not support this cipher/version "
				      "(missing crypto module?)",
	[KTLS_R_KERNEL_REFUSED] = "kernel refused the keys",
	[KTLS_R_BAD_KEYS] = "libssl's key structure could not be parsed",
	[KTLS_R_REKEY_FAILED] = "a KeyUpdate could not be installed in the kernel; connection ended",
	[KTLS_R_PEER_CLOSED] = "connection ended by the peer",
	[KTLS_R_KEYUPDATE_STORM] = "the peer sent KeyUpdates beyond keyupdate_burst or "
				   "storm_limit; connection ended",
	[KTLS_R_KEY_MISMATCH] = "libssl offered a TLS 1.3 key that is not the next of the "
				"bridge's chain; connection ended",
	[KTLS_R_PROTOCOL] = "the peer broke the TLS protocol after the hand-off; "
			    "connection ended with an alert",
};

const char *ktls_reason_str(enum ktls_reason r)
{
	if ((unsigned)r >= KTLS_R__COUNT || !reason_text[r])
		return "unknown reason";
	return reason_text[r];
}

const char *ktls_mode_str(enum ktls_mode m)
{
	switch (m) {
	case KTLS_MODE_KERNEL_SW:
		return "kernel-sw";
	case KTLS_MODE_KERNEL_HW:
		return "kernel-hw";
	case KTLS_MODE_USERSPACE:
		return "userspace";
	default:
		return "unknown";
	}
}

static const char *const reason_code[KTLS_R__COUNT] = {
	[KTLS_R_NONE] = "none",
	[KTLS_R_NOT_OFFERED] = "not-offered",
	[KTLS_R_POLICY_OFF] = "policy-off",
	[KTLS_R_POLICY_DIRECTION] = "policy-direction",
	[KTLS_R_POLICY_CIPHER] = "policy-cipher",
	[KTLS_R_TLS13_NO_REKEY] = "tls13-no-rekey",
	[KTLS_R_TLS13_NEVER] = "tls13-never",
	[KTLS_R_ULP_UNAVAILABLE] = "ulp-unavailable",
	[KTLS_R_CIPHER_UNSUPPORTED] = "cipher-unsupported",
	[KTLS_R_KERNEL_REFUSED] = "kernel-refused",
	[KTLS_R_BAD_KEYS] = "bad-keys",
	[KTLS_R_REKEY_FAILED] = "rekey-failed",
	[KTLS_R_PEER_CLOSED] = "peer-closed",
	[KTLS_R_KEYUPDATE_STORM] = "keyupdate-storm",
	[KTLS_R_KEY_MISMATCH] = "key-mismatch",
	[KTLS_R_PROTOCOL] = "protocol-error",
};

const char *ktls_reason_code(enum ktls_reason r)
{
	if ((unsigned)r >= KTLS_R__COUNT || !reason_code[r])
		return "unknown";
	return reason_code[r];
}

void ktls_dir_note(struct ktls_dir *d, enum ktls_reason r, int err, const char *what)
{
	d->st.reason = r;
	d->st.err = err;
	if (err)
		snprintf(d->st.detail, sizeof(d->st.detail), "%s: %s", what, ktls_errno_name(err));
	else
		snprintf(d->st.detail, sizeof(d->st.detail), "%s", what);
}
