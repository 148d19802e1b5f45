/* run.c - spawn helper programs; see run.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

/* drain - read what is there from fd into b (bounded); 0 at EOF */
static int
drain(int fd, struct buf *b)
{
	char chunk[4096];
	ssize_t r = read(fd, chunk, sizeof(chunk));

	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (r <= 0)
		return 0;
	if (b != NULL && b->len < 1024 * 1024)
		buf_append(b, chunk, (size_t)r);
	return 1;
}

int
run_program(char *const argv[], const char *input, size_t input_len,
	    struct buf *out, struct buf *errout, int timeout_ms, char **err_r)
{
	static char *const envp[] = {
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL
	};
	int in[2] = { -1, -1 }, op[2] = { -1, -1 }, ep[2] = { -1, -1 };
	long long deadline = now_mono_ms() + timeout_ms;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int status = 0, rc = -1, spawn_errno;
	size_t off = 0;
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(op, O_CLOEXEC) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0) {
		set_error(err_r, "pipe: %s", strerror(errno));
		goto close_pipes;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	/* Its own process group, so a timeout also kills what it started
	 * (sendmail runs postdrop). */
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	spawn_errno = posix_spawn(&pid, argv[0], &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (spawn_errno != 0) {
		set_error(err_r, "cannot run %s: %s", argv[0], strerror(spawn_errno));
		goto close_pipes;
	}
	close(in[0]);
	close(op[1]);
	close(ep[1]);
	in[0] = op[1] = ep[1] = -1;
	if (input == NULL || input_len == 0) {
		close(in[1]);
		in[1] = -1;
	} else
		fcntl(in[1], F_SETFL, O_NONBLOCK);

	while (op[0] >= 0 || ep[0] >= 0) {
		struct pollfd pfd[3] = {
			{ .fd = op[0], .events = POLLIN },
			{ .fd = ep[0], .events = POLLIN },
			{ .fd = in[1], .events = POLLOUT },
		};
		long long left = deadline - now_mono_ms();
		int n;

		if (left <= 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, NULL, 0);
			set_error(err_r, "%s did not finish within %d ms", argv[0], timeout_ms);
			goto close_pipes;
		}
		/* poll ignores negative fds, so closed pipes drop out. */
		n = poll(pfd, 3, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_error(err_r, "poll: %s", strerror(errno));
			kill(-pid, SIGKILL);
			waitpid(pid, NULL, 0);
			goto close_pipes;
		}
		if (in[1] >= 0 && (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(in[1], input + off, input_len - off);

			if (w > 0)
				off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == input_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(op[0], out)) {
			close(op[0]);
			op[0] = -1;
		}
		if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(ep[0], errout)) {
			close(ep[0]);
			ep[0] = -1;
		}
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			set_error(err_r, "waitpid: %s", strerror(errno));
			goto close_pipes;
		}
	}
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else
		set_error(err_r, "%s died with signal %d", argv[0], WTERMSIG(status));
close_pipes:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	return rc;
}
