// SPDX-License-Identifier: MIT
/* Unit tests of lib/core/file.c: atomic writes (and their failures), bounded reads, mkdir -p,
 * rm -rf. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "kha/file.h"
#include "kha/banned.h"

static int setup_dir(void **state)
{
	char *dir = strdup("/tmp/kha-test-file-XXXXXX");

	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	char *dir = *state;
	int r = kha_file_remove_tree(dir, NULL);

	free(dir);
	return r;
}

static char *path_in(const char *dir, const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* Number of entries in dir besides . and .. (temporary files left behind show up here). */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void assert_content(const char *path, const char *want)
{
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(kha_file_read_all(path, 1 << 20, &buf, &len, NULL), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(buf, want);
	free(buf);
}

static void test_atomic_write_creates_with_mode(void **state)
{
	kha_autofree char *key = path_in(*state, "key.pem");
	kha_autofree char *pub = path_in(*state, "cert.pem");
	mode_t old = umask(077);
	struct stat st;

	assert_int_equal(kha_file_write_atomic(key, "secret", 6, 0600, NULL), 0);
	assert_int_equal(kha_file_write_atomic(pub, "public", 6, 0644, NULL), 0);
	umask(old);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* the umask (077) does not narrow an explicit mode */
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_content(key, "secret");
	assert_int_equal(count_entries(*state), 2);
}

static void test_atomic_write_replaces(void **state)
{
	kha_autofree char *p = path_in(*state, "state.json");

	assert_int_equal(kha_file_write_atomic(p, "old", 3, 0644, NULL), 0);
	assert_int_equal(kha_file_write_atomic(p, "new content", 11, 0600, NULL), 0);
	assert_content(p, "new content");
	assert_int_equal(count_entries(*state), 1);
}

static void test_atomic_write_directory_target_fails(void **state)
{
	kha_autofree char *p = path_in(*state, "adir");
	struct kha_diag d = {0};
	struct stat st;

	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(kha_file_write_atomic(p, "x", 1, 0644, &d), -EISDIR);
	assert_non_null(strstr(d.msg, "adir"));
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(count_entries(*state), 1);
}

static void test_atomic_write_missing_or_bad_dir_fails(void **state)
{
	kha_autofree char *nodir = path_in(*state, "nope/file");
	kha_autofree char *file = path_in(*state, "plain");
	kha_autofree char *under_file = path_in(*state, "plain/file");
	struct kha_diag d = {0};

	assert_int_equal(kha_file_write_atomic(nodir, "x", 1, 0644, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "nope/file"));
	assert_int_equal(kha_file_write_atomic(file, "keep", 4, 0644, NULL), 0);
	assert_int_equal(kha_file_write_atomic(under_file, "x", 1, 0644, NULL), -ENOTDIR);
	assert_content(file, "keep");
	assert_int_equal(count_entries(*state), 1);
}

static void test_atomic_write_unwritable_dir_fails(void **state)
{
	kha_autofree char *ro = path_in(*state, "ro");
	kha_autofree char *p = path_in(ro, "file");
	int status;
	pid_t pid;

	assert_int_equal(mkdir(ro, 0755), 0);
	assert_int_equal(kha_file_write_atomic(p, "old", 3, 0644, NULL), 0);
	assert_int_equal(chmod(ro, 0555), 0);
	assert_int_equal(chmod(*state, 0755), 0);
	/* root writes anywhere: the write runs in a child that drops to nobody first */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		_exit(kha_file_write_atomic(p, "new", 3, 0644, NULL) == -EACCES ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(chmod(ro, 0755), 0);
	assert_content(p, "old");
	assert_int_equal(count_entries(ro), 1);
}

static void test_atomic_stream_abort_keeps_target(void **state)
{
	kha_autofree char *p = path_in(*state, "snap.db");
	struct kha_atomic_file f;

	assert_int_equal(kha_file_write_atomic(p, "previous", 8, 0600, NULL), 0);
	assert_int_equal(kha_atomic_file_open(&f, p, 0600, NULL), 0);
	assert_true(f.fd >= 0);
	assert_int_equal(fcntl(f.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(kha_atomic_file_write(&f, "half a ", 7, NULL), 0);
	assert_int_equal(count_entries(*state), 2);
	kha_atomic_file_abort(&f);
	assert_int_equal(f.fd, -1);
	kha_atomic_file_abort(&f); /* twice is harmless */
	assert_content(p, "previous");
	assert_int_equal(count_entries(*state), 1);
}

static void test_atomic_stream_commit(void **state)
{
	kha_autofree char *p = path_in(*state, "snap.db");
	struct kha_atomic_file f;

	assert_int_equal(kha_atomic_file_open(&f, p, 0640, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kha_atomic_file_write(&f, "chunk;", 6, NULL), 0);
	assert_int_equal(access(p, F_OK), -1); /* nothing visible before the commit */
	assert_int_equal(kha_atomic_file_commit(&f, NULL), 0);
	assert_content(p, "chunk;chunk;chunk;");
	assert_int_equal(count_entries(*state), 1);
}

static void test_atomic_commit_failure_removes_temp(void **state)
{
	kha_autofree char *p = path_in(*state, "target");
	kha_autofree char *inner = path_in(p, "x");
	struct kha_atomic_file f;
	struct kha_diag d = {0};

	assert_int_equal(kha_atomic_file_open(&f, p, 0644, NULL), 0);
	assert_int_equal(kha_atomic_file_write(&f, "data", 4, NULL), 0);
	/* someone puts a non-empty directory where the file should go: rename must fail */
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(kha_file_write_atomic(inner, "y", 1, 0644, NULL), 0);
	assert_true(kha_atomic_file_commit(&f, &d) < 0);
	assert_non_null(strstr(d.msg, "rename"));
	assert_int_equal(count_entries(*state), 1);
	assert_content(inner, "y");
}

static void test_read_all_bounds(void **state)
{
	kha_autofree char *p = path_in(*state, "data");
	kha_autofree char *missing = path_in(*state, "missing");
	char *buf = NULL;
	size_t len = 0;
	struct kha_diag d = {0};

	assert_int_equal(kha_file_write_atomic(p, "0123456789", 10, 0644, NULL), 0);
	assert_int_equal(kha_file_read_all(p, 10, &buf, &len, NULL), 0);
	assert_int_equal(len, 10);
	assert_int_equal(buf[10], '\0');
	free(buf);
	buf = NULL;
	assert_int_equal(kha_file_read_all(p, 9, &buf, &len, &d), -EFBIG);
	assert_null(buf);
	assert_int_equal(kha_file_read_all(missing, 10, &buf, &len, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "missing"));
	assert_int_equal(kha_file_read_all(*state, 10, &buf, &len, NULL), -EISDIR);
	/* procfs files report size 0 and are read to EOF all the same */
	assert_int_equal(kha_file_read_all("/proc/self/stat", 4096, &buf, &len, NULL), 0);
	assert_true(len > 20);
	free(buf);
	buf = NULL;
	/* empty file */
	assert_int_equal(kha_file_write_atomic(p, "", 0, 0644, NULL), 0);
	assert_int_equal(kha_file_read_all(p, 10, &buf, &len, NULL), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
}

static void test_mkdir_p_and_remove_tree(void **state)
{
	kha_autofree char *deep = path_in(*state, "a/b/c");
	kha_autofree char *top = path_in(*state, "a");
	kha_autofree char *file = path_in(*state, "a/b/c/f");
	kha_autofree char *outside = path_in(*state, "outside");
	kha_autofree char *link = path_in(*state, "a/b/link");
	kha_autofree char *victim = path_in(*state, "outside/precious");

	assert_int_equal(kha_file_mkdir_p(deep, 0755, NULL), 0);
	assert_int_equal(kha_file_mkdir_p(deep, 0755, NULL), 0); /* exists: fine */
	assert_int_equal(kha_file_write_atomic(file, "f", 1, 0600, NULL), 0);
	assert_int_equal(kha_file_mkdir_p(file, 0755, NULL), -ENOTDIR);
	assert_int_equal(kha_file_mkdir_p(outside, 0755, NULL), 0);
	assert_int_equal(kha_file_write_atomic(victim, "v", 1, 0600, NULL), 0);
	/* a symbolic link to a directory is removed, never followed */
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(kha_file_remove_tree(top, NULL), 0);
	assert_int_equal(access(top, F_OK), -1);
	assert_content(victim, "v");
	assert_int_equal(kha_file_remove_tree(top, NULL), 0); /* missing: fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_atomic_write_creates_with_mode, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_atomic_write_replaces, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_atomic_write_directory_target_fails, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_atomic_write_missing_or_bad_dir_fails,
						setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_atomic_write_unwritable_dir_fails, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_atomic_stream_abort_keeps_target, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_atomic_stream_commit, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_atomic_commit_failure_removes_temp, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_all_bounds, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_mkdir_p_and_remove_tree, setup_dir,
						teardown_dir),
	};
	return cmocka_run_group_tests_name("file", tests, NULL, NULL);
}
