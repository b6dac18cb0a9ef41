// SPDX-License-Identifier: MIT
/*
 * replay.c - main() for a fuzz target built as a plain program: run
 * LLVMFuzzerTestOneInput() once on every file named on the command line
 * and on every file in every directory named there (not recursive).
 * Without arguments it replays $KTLS_FUZZ_CORPUS/<target>, the target
 * being the program's name without "replay-" (`make check` sets the
 * variable to test/fuzz/corpus).  A failed property aborts; exit 0 when
 * every input ran, 1 when an input could not be read or none was found.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path, size_t *count)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			uint8_t *nb = realloc(buf, cap ? 2 * cap : 4096);

			if (!nb) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
			cap = cap ? 2 * cap : 4096;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (!n)
			break;
		len += n;
	}
	fclose(f);
	/* an exact-size copy, so that a read past the end is caught */
	{
		uint8_t *exact = malloc(len ? len : 1);

		if (!exact) {
			free(buf);
			return -1;
		}
		memcpy(exact, buf, len);
		free(buf);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	(*count)++;
	return 0;
}

static int replay_path(const char *path, size_t *count)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int ret = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path, count);
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		char sub[PATH_MAX];

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (stat(sub, &st) == 0 && S_ISREG(st.st_mode) && replay_file(sub, count) < 0)
			ret = -1;
	}
	closedir(d);
	return ret;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	const char *corpus = getenv("KTLS_FUZZ_CORPUS");
	size_t count = 0;
	int i, ret = 0;

	name = name ? name + 1 : argv[0];
	if (!strncmp(name, "lt-", 3))
		name += 3;
	if (!strncmp(name, "replay-", 7))
		name += 7;
	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_path(argv[i], &count) < 0)
				ret = 1;
	} else if (corpus) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s/%s", corpus, name);
		if (replay_path(dir, &count) < 0)
			ret = 1;
	} else {
		fprintf(stderr, "usage: %s FILE|DIR... (or set KTLS_FUZZ_CORPUS)\n", argv[0]);
		return 1;
	}
	if (!count) {
		fprintf(stderr, "replay-%s: no inputs found\n", name);
		return 1;
	}
	printf("replay-%s: %zu input%s replayed\n", name, count, count == 1 ? "" : "s");
	return ret;
}
