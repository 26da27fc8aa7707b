// SPDX-License-Identifier: MIT
/*
 * What every libcurl client of kha shares: the global initialisation, the setup of an easy
 * handle and the meaning of a failure. The mapping reads libcurl's code first, then the OS
 * errno and OpenSSL's verification result behind it, and only then libcurl's error text
 * (TLS alerts from the server are known by their text alone).
 */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/x509_vfy.h>

#include "kha/http-curl.h"
#include "kha/parse.h"
#include "kha/banned.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kha_http_global_init(struct kha_diag *d)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return kha_diag_set(d, ENOMEM, "libcurl initialisation failed: %s",
				    curl_easy_strerror(global_rc));
	return 0;
}

static long us_to_ms(uint64_t us)
{
	uint64_t ms = (us + 999) / 1000;

	return ms > (uint64_t)LONG_MAX ? LONG_MAX : (long)ms;
}

static CURLcode set_blob(CURL *e, CURLoption opt, const void *data, size_t len)
{
	struct curl_blob b = {(void *)data, len, CURL_BLOB_COPY};

	return curl_easy_setopt(e, opt, &b);
}

/*
 * The system's trust store, parsed once per multi handle rather than on every handshake.
 * libcurl keeps a parsed CA store between connections only when it comes from one file, and
 * its built-in default (on Debian) names the bundle file AND the hashed directory: then every
 * new TLS connection re-reads and parses the whole bundle (about 150 certificates) in the
 * caller's thread. For kha proxy's HTTPS checks without --check-cacert, which all fail
 * verification against a private CA and so never keep a connection, that was a parse per
 * check on the control thread: measured under ASan on a loaded machine, the admin endpoint
 * stalled up to a second at a time and checks of healthy backends timed out. The bundle file
 * alone is the same trust (the directory holds links to the same certificates). Without a
 * built-in bundle file, libcurl's default stands.
 */
static void system_trust_cached(CURL *e)
{
#if LIBCURL_VERSION_NUM >= 0x075400 /* 7.84: CURLINFO_CAINFO */
	char *file = NULL;

	if (curl_easy_getinfo(e, CURLINFO_CAINFO, &file) != CURLE_OK || !file || !file[0])
		return;
	if (curl_easy_setopt(e, CURLOPT_CAPATH, NULL) != CURLE_OK)
		return;
	kha_ignore(curl_easy_setopt(e, CURLOPT_CAINFO, file));
#else
	(void)e;
#endif
}

#define SET(opt, val)                                                                   \
	do {                                                                            \
		if (cc == CURLE_OK && (cc = curl_easy_setopt(e, opt, val)) != CURLE_OK) \
			what = #opt;                                                    \
	} while (0)
#define SET_BLOB(opt, data, len)                                                      \
	do {                                                                          \
		if (cc == CURLE_OK && (cc = set_blob(e, opt, data, len)) != CURLE_OK) \
			what = #opt;                                                  \
	} while (0)

int kha_http_easy_setup(CURL *e, const struct kha_http_easy_opts *o, struct kha_diag *d)
{
	static const struct kha_http_tls no_tls = {};
	const struct kha_http_tls *t = o->tls ? o->tls : &no_tls;
	const char *what = NULL;
	CURLcode cc = CURLE_OK;

	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_USERAGENT, o->user_agent ? o->user_agent : "kha");
	if (o->errbuf) {
		o->errbuf[0] = '\0';
		SET(CURLOPT_ERRORBUFFER, o->errbuf);
	}
	if (o->connect_timeout_us)
		SET(CURLOPT_CONNECTTIMEOUT_MS, us_to_ms(o->connect_timeout_us));
	if (o->timeout_us)
		SET(CURLOPT_TIMEOUT_MS, us_to_ms(o->timeout_us));
	if (!o->proxy)
		SET(CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
	else
		SET(CURLOPT_PROXY, o->proxy);

	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, t->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, t->insecure ? 0L : 2L);
	if (t->ca_data || t->cacert) {
		/* only this CA: not the system's as well */
		SET(CURLOPT_CAPATH, NULL);
		if (t->ca_data) {
			SET(CURLOPT_CAINFO, NULL);
			SET_BLOB(CURLOPT_CAINFO_BLOB, t->ca_data, t->ca_len);
		} else {
			SET(CURLOPT_CAINFO, t->cacert);
		}
	} else if (!t->insecure && cc == CURLE_OK) {
		system_trust_cached(e);
	}
	if (t->cert_data || t->cert) {
		SET(CURLOPT_SSLCERTTYPE, "PEM");
		if (t->cert_data)
			SET_BLOB(CURLOPT_SSLCERT_BLOB, t->cert_data, t->cert_len);
		else
			SET(CURLOPT_SSLCERT, t->cert);
	}
	if (t->key_data || t->key) {
		SET(CURLOPT_SSLKEYTYPE, "PEM");
		if (t->key_data)
			SET_BLOB(CURLOPT_SSLKEY_BLOB, t->key_data, t->key_len);
		else
			SET(CURLOPT_SSLKEY, t->key);
	}
	if (cc != CURLE_OK)
		return kha_diag_set(d, EINVAL, "libcurl refused %s: %s", what,
				    curl_easy_strerror(cc));
	return 0;
}

#undef SET
#undef SET_BLOB

/* ---- failures ------------------------------------------------------------------------------ */

static bool contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle);
}

/* The host the transfer asked for (the name a certificate is checked against). */
static const char *url_host(CURL *e, char *buf, size_t size)
{
	const char *url = NULL, *p, *end;

	buf[0] = '\0';
	if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || !url)
		return buf;
	p = strstr(url, "://");
	p = p ? p + 3 : url;
	if (*p == '[')
		end = strchr(p, ']') ? strchr(p, ']') + 1 : p + strlen(p);
	else
		end = p + strcspn(p, ":/?#");
	snprintf(buf, size, "%.*s", (int)(end - p), p);
	return buf;
}

/* The OpenSSL verification result as a short human reason (host: for a name mismatch). */
static const char *verify_reason(long verify, const char *errbuf, const char *host, char *buf,
				 size_t size)
{
	switch (verify) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return "certificate signed by unknown CA";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "server certificate has expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "server certificate is not yet valid";
	case X509_V_ERR_INVALID_PURPOSE:
		return "server certificate lacks the serverAuth extended key usage";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		goto mismatch;
	default:
		break;
	}
	if (contains(errbuf, "subject name") || contains(errbuf, "does not match"))
		goto mismatch;
	if (verify != X509_V_OK)
		return X509_verify_cert_error_string(verify);
	return errbuf && *errbuf ? errbuf : "server certificate not trusted";
mismatch:
	snprintf(buf, size, "server certificate is not valid for \"%s\" (not in its SANs)", host);
	return buf;
}

/* A TLS alert from the server about our certificate (TLS 1.3 sends it after the handshake). */
static bool client_cert_alert(const char *errbuf)
{
	return contains(errbuf, "alert certificate required") ||
	       contains(errbuf, "alert bad certificate") || contains(errbuf, "alert unknown ca") ||
	       contains(errbuf, "alert certificate unknown") ||
	       contains(errbuf, "alert unsupported certificate") ||
	       contains(errbuf, "alert handshake failure");
}

static bool is_tls_code(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return true;
	default:
		return false;
	}
}

static int KHA_PRINTF(5, 6) fail(struct kha_http_failure *f, enum kha_http_fail kind,
				 struct kha_diag *d, int err, const char *fmt, ...)
{
	char msg[KHA_DIAG_MAX];
	va_list ap;

	f->fail = kind;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return kha_diag_set(d, err, "%s", msg);
}

int kha_http_curl_error(CURL *e, CURLcode rc, const char *errbuf, uint64_t connect_timeout_us,
			uint64_t timeout_us, struct kha_http_failure *ret, struct kha_diag *d)
{
	struct kha_http_failure local = {}, *f = ret ? ret : &local;
	const char *eb = errbuf ? errbuf : "";
	long req_size = 0, status = 0, verify = X509_V_OK;
	char dur[32], host[256], why[320];

	*f = (struct kha_http_failure){};
	curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &req_size);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &f->os_errno);
	f->sent = req_size > 0 || status > 0;
	if (client_cert_alert(eb))
		return fail(f, KHA_HTTP_FAIL_TLS_CLIENT, d, EACCES,
			    "TLS: the server rejected the client certificate (%s)",
			    strchr(eb, ':') ? eb : "alert");
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		f->sent = false;
		return fail(f, KHA_HTTP_FAIL_OTHER, d, EINVAL, "malformed URL: %s", eb);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return fail(f, KHA_HTTP_FAIL_RESOLVE, d, EHOSTUNREACH, "%s",
			    *eb ? eb : curl_easy_strerror(rc));
	case CURLE_COULDNT_CONNECT:
		if (f->os_errno == ECONNREFUSED || f->os_errno == 0)
			return fail(f, KHA_HTTP_FAIL_CONNECT, d, ECONNREFUSED,
				    "connection refused");
		return fail(f, KHA_HTTP_FAIL_CONNECT, d, (int)f->os_errno, "cannot connect: %s",
			    strerror((int)f->os_errno));
	case CURLE_OPERATION_TIMEDOUT:
		if (!f->sent) {
			uint64_t us = connect_timeout_us;

			curl_off_t tls = 0;
			long tcp = 0;
			char *url = NULL;

			if (timeout_us && (!us || timeout_us < us))
				us = timeout_us;
			/* TCP connected but TLS never finished: a frozen or non-TLS server
			 * (curl counts a connection once TCP is up; CONNECT_TIME stays 0 here) */
			curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &tcp);
			curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &tls);
			curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
			f->tls_stalled =
				tcp > 0 && tls == 0 && url && strncmp(url, "https:", 6) == 0;
			return fail(f, KHA_HTTP_FAIL_CONNECT_TIMEOUT, d, ETIMEDOUT,
				    f->tls_stalled
					    ? "TCP connected, but no TLS handshake within %s "
					      "(a frozen server, or one that does not speak "
					      "TLS?)"
					    : "no connection within %s: timed out",
				    kha_format_duration(dur, sizeof(dur), us));
		}
		return fail(f, KHA_HTTP_FAIL_TIMEOUT, d, ETIMEDOUT, "no answer within %s",
			    kha_format_duration(dur, sizeof(dur), timeout_us));
	case CURLE_SSL_CACERT_BADFILE:
		return fail(f, KHA_HTTP_FAIL_CA_FILE, d, ENOENT, "cannot use the CA file: %s", eb);
	case CURLE_SSL_CERTPROBLEM:
		return fail(f, KHA_HTTP_FAIL_TLS_FILES, d, ENOENT,
			    "cannot use the client certificate or key: %s", eb);
	case CURLE_PEER_FAILED_VERIFICATION:
		curl_easy_getinfo(e, CURLINFO_SSL_VERIFYRESULT, &verify);
		return fail(f, KHA_HTTP_FAIL_TLS_VERIFY, d, EACCES, "TLS handshake failed: %s",
			    verify_reason(verify, eb, url_host(e, host, sizeof(host)), why,
					  sizeof(why)));
	case CURLE_SSL_CONNECT_ERROR:
		if (contains(eb, "wrong version number") ||
		    contains(eb, "packet length too long") || contains(eb, "record layer failure"))
			return fail(f, KHA_HTTP_FAIL_TLS, d, EPROTO,
				    "TLS handshake failed: the endpoint does not speak TLS");
		return fail(f, KHA_HTTP_FAIL_TLS, d, EPROTO, "TLS handshake failed: %s", eb);
	case CURLE_GOT_NOTHING:
		return fail(f, KHA_HTTP_FAIL_IO, d, ECONNRESET,
			    "connection closed without an answer");
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return fail(f, KHA_HTTP_FAIL_IO, d, ECONNRESET, "connection lost: %s",
			    *eb ? eb : curl_easy_strerror(rc));
	case CURLE_WEIRD_SERVER_REPLY:
		return fail(f, KHA_HTTP_FAIL_OTHER, d, EPROTO, "not an HTTP answer: %s", eb);
	case CURLE_ABORTED_BY_CALLBACK:
		return fail(f, KHA_HTTP_FAIL_ABORTED, d, ECANCELED, "cancelled");
	case CURLE_OUT_OF_MEMORY:
		return fail(f, KHA_HTTP_FAIL_OTHER, d, ENOMEM, "out of memory");
	default:
		if (is_tls_code(rc))
			return fail(f, KHA_HTTP_FAIL_TLS, d, EPROTO, "TLS failure: %s",
				    *eb ? eb : curl_easy_strerror(rc));
		return fail(f, KHA_HTTP_FAIL_OTHER, d, EIO, "%s",
			    *eb ? eb : curl_easy_strerror(rc));
	}
}
