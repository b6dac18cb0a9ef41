// SPDX-License-Identifier: MIT
/*
 * httpget.c - GET requests on one HTTP/1.1 keep-alive connection for
 * ktls-client --get; the last request asks the server to close.  A
 * server that closes earlier (one answer per connection) is followed to a
 * new connection by the caller (http_get_reconnect()).  Only
 * what a static file server answers is understood: a status line, headers
 * and a Content-Length body (no chunked encoding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpget.h"

static int build(struct http_get *h)
{
	int n = snprintf(h->req, sizeof(h->req),
			 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: %s\r\n\r\n", h->path, h->host,
			 h->made + 1 == h->requests ? "close" : "keep-alive");

	if (n < 0 || (size_t)n >= sizeof(h->req)) {
		h->error = "request too long";
		return -1;
	}
	h->req_len = (size_t)n;
	h->req_off = 0;
	h->made++;
	return 0;
}

int http_get_init(struct http_get *h, const char *path, const char *host, int n)
{
	memset(h, 0, sizeof(*h));
	h->path = path;
	h->host = host;
	h->requests = n;
	return build(h);
}

/* The header is complete in h->hdr: status and Content-Length. */
static int parse_header(struct http_get *h)
{
	const char *line, *end = h->hdr + h->hdr_len;
	int status;
	bool have_len = false;

	if (sscanf(h->hdr, "HTTP/1.%*d %d", &status) != 1) {
		h->error = "not an HTTP/1.x status line";
		return -1;
	}
	h->server_close = false;
	for (line = strstr(h->hdr, "\r\n"); line && line + 2 < end; line = strstr(line + 2, "\r\n")) {
		if (!strncasecmp(line + 2, "Content-Length:", 15)) {
			h->body_left = strtoull(line + 17, NULL, 10);
			have_len = true;
		} else if (!strncasecmp(line + 2, "Connection:", 11)) {
			const char *v = line + 13;

			v += strspn(v, " \t");
			if (!strncasecmp(v, "close", 5))
				h->server_close = true;
		}
	}
	if (!have_len) {
		h->error = "response without Content-Length";
		return -1;
	}
	h->status = status;
	h->in_body = true;
	return 0;
}

static int response_done(struct http_get *h, int (*end)(void *arg, int status), void *arg)
{
	h->in_body = false;
	h->hdr_len = 0;
	h->answered++;
	h->on_conn++;
	if (h->status == 200)
		h->ok++;
	if (end && end(arg, h->status))
		return -1;
	if (h->server_close) {
		h->closing = true;	/* the next request waits for a new connection */
		return 0;
	}
	return h->made < h->requests ? build(h) : 0;
}

bool http_get_reconnect(struct http_get *h)
{
	if (http_get_done(h) || h->in_body || h->hdr_len || !h->on_conn)
		return false;
	if (h->closing) {	/* said so: the next request was not built yet */
		if (build(h))
			return false;
	} else {		/* closed between answers: send the pending one again */
		h->req_off = 0;
	}
	h->closing = false;
	h->on_conn = 0;
	return true;
}

int http_get_feed(struct http_get *h, const uint8_t *p, size_t n,
		  int (*body)(void *arg, const uint8_t *p, size_t n),
		  int (*end)(void *arg, int status), void *arg)
{
	while (n) {
		if (http_get_done(h) || h->closing) {
			h->error = h->closing ? "bytes after a Connection: close response" :
						"bytes after the last response";
			return -1;
		}
		if (h->in_body) {
			size_t take = n < h->body_left ? n : (size_t)h->body_left;

			if (body(arg, p, take))
				return -1;
			h->body_left -= take;
			h->body_bytes += take;
			p += take;
			n -= take;
			if (!h->body_left && response_done(h, end, arg))
				return -1;
			continue;
		}
		if (h->hdr_len + 1 >= sizeof(h->hdr)) {
			h->error = "response header too long";
			return -1;
		}
		h->hdr[h->hdr_len++] = (char)*p++;
		n--;
		h->hdr[h->hdr_len] = 0;
		if (h->hdr_len >= 4 && !memcmp(h->hdr + h->hdr_len - 4, "\r\n\r\n", 4)) {
			if (parse_header(h))
				return -1;
			if (!h->body_left && response_done(h, end, arg))
				return -1;
		}
	}
	return 0;
}
