// SPDX-License-Identifier: MIT
/*
 * Replays fuzz inputs without libFuzzer: every file named on the command line, or every file
 * in the directories named, is passed to LLVMFuzzerTestOneInput once. Used by the normal test
 * suite so the seed corpus and past crashers run on every build.
 *
 * Exit status: 0 when at least one input was replayed; 1 when an input cannot be read, or when
 * nothing was replayed at all (an empty or missing corpus would otherwise pass while testing
 * nothing).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rbe");
	uint8_t *buf;
	long n;

	if (!f) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return -1;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int count = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: no such file\n", argv[i]);
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;
			char path[4096];
			if (!d) {
				fprintf(stderr, "replay: cannot open %s\n", argv[i]);
				return 1;
			}
			while ((e = readdir(d))) {
				if (e->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
				if (replay_file(path) < 0) {
					closedir(d);
					return 1;
				}
				count++;
			}
			closedir(d);
		} else {
			if (replay_file(argv[i]) < 0)
				return 1;
			count++;
		}
	}
	if (count == 0) {
		fprintf(stderr,
			"replay: no inputs in %s: an empty corpus tests nothing; "
			"add seed files to it\n",
			argc > 1 ? argv[1] : "(no path given)");
		return 1;
	}
	printf("replayed %d inputs\n", count);
	return 0;
}
