// SPDX-License-Identifier: MIT
/*
 * httpget.c - GET requests on one HTTP/1.1 keep-alive connection for
 * ktls-client --get; the last request asks the server to close.  Only
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
	for (line = strstr(h->hdr, "\r\n"); line && line + 2 < end; line = strstr(line + 2, "\r\n")) {
		if (!strncasecmp(line + 2, "Content-Length:", 15)) {
			h->body_left = strtoull(line + 17, NULL, 10);
			have_len = true;
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

static int response_done(struct http_get *h)
{
	h->in_body = false;
	h->hdr_len = 0;
	h->answered++;
	if (h->status == 200)
		h->ok++;
	return h->made < h->requests ? build(h) : 0;
}

int http_get_feed(struct http_get *h, const uint8_t *p, size_t n,
		  int (*body)(void *arg, const uint8_t *p, size_t n), void *arg)
{
	while (n) {
		if (http_get_done(h)) {
			h->error = "bytes after the last response";
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
			if (!h->body_left && response_done(h))
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
			if (!h->body_left && response_done(h))
				return -1;
		}
	}
	return 0;
}
