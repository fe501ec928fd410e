/* SPDX-License-Identifier: MIT */
/*
 * virtio-console (virtio 1.2, 5.3): one port; of the optional features only
 * VIRTIO_CONSOLE_F_EMERG_WRITE.  Queue 0 (receiveq) carries input to the
 * driver, queue 1 (transmitq) its output.
 *
 * Config space (12 bytes, all reading as zero): cols, rows and max_nr_ports
 * are read-only (no F_SIZE, no F_MULTIPORT); emerg_wr is write-only.  A
 * SET_CONFIG of the whole emerg_wr field (offset 8, 4 bytes) writes its low
 * byte to the console output, like transmitq output and in order with it.
 * As the virtio spec allows, this works at any time, even before the queues
 * are set up or the feature is negotiated.  Any other write is refused.
 *
 * Params, exactly one of:
 *   stdio              our stdin and stdout
 *   pty[,link=PATH]    a new pseudo-terminal in raw mode; its name is logged
 *                      and, with link=, symlinked at PATH (removed on destroy)
 *   socket=PATH        a listening unix stream socket; one client at a time
 *
 * Input fds are watched only while the device is active and no bytes already
 * read wait for a receive buffer.  Bytes read are never dropped: they wait in
 * `pending` until the driver posts buffers (notify on queue 0).  Output is
 * written synchronously: blocking on stdout; on a pty or socket whose reader
 * does not keep up (EAGAIN) the rest is dropped and counted, as it is when no
 * socket client is connected.  A socket client is dropped on error or EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <pty.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "device.h"

#define CON_QUEUE_SIZE	64
#define CON_RXQ		0
#define CON_TXQ		1
#define CON_PENDING	4096
#define CON_EMERG_OFF	offsetof(struct virtio_console_config, emerg_wr)
#define CON_EMERG_LEN	sizeof(((struct virtio_console_config *)0)->emerg_wr)

enum con_mode { CON_NONE, CON_STDIO, CON_PTY, CON_SOCKET };

struct console {
	struct xvb_model_base m;	/* log, loop, name */
	enum con_mode mode;
	char *sock_path, *link_path;
	int master, slave;		/* pty; the slave is held open so that the
					 * master never reports a hang-up */
	int listen_fd, client;		/* socket */
	int spare;			/* /dev/null, given up to refuse a client
					 * when we are out of descriptors */
	bool listen_paused;		/* out of descriptors and no spare */
	int in_fd, out_fd;		/* the current ones, or -1 */
	bool in_watched, in_on;		/* in_fd registered, and with EPOLLIN */
	bool in_eof;			/* stdio/pty input is over */
	struct xvb_vdev *vdev;		/* set between activate and reset */
	uint8_t pending[CON_PENDING];	/* read, not yet given to the driver */
	size_t pend_off, pend_len;
	uint64_t tx_dropped;		/* output bytes nobody received */
};

static int con_set_mode(struct console *c, enum con_mode m, const char *key)
{
	if (c->mode != CON_NONE) {
		xvb_model_err(&c->m, "parameter '%s': only one of stdio, pty, socket", key);
		return -EINVAL;
	}
	c->mode = m;
	return 0;
}

static int con_strdup(char **p, const char *val)
{
	free(*p);
	*p = strdup(val);
	return *p ? 0 : -ENOMEM;
}

static int con_param(void *arg, const char *key, const char *val)
{
	struct console *c = arg;
	bool has_val = val && *val;
	int err;

	if (!strcmp(key, "stdio") && !val) {
		err = con_set_mode(c, CON_STDIO, key);
	} else if (!strcmp(key, "pty") && !val) {
		err = con_set_mode(c, CON_PTY, key);
	} else if (!strcmp(key, "socket") && has_val) {
		err = con_set_mode(c, CON_SOCKET, key);
		if (!err)
			err = con_strdup(&c->sock_path, val);
	} else if (!strcmp(key, "link") && has_val) {
		err = con_strdup(&c->link_path, val);
	} else if (!strcmp(key, "stdio") || !strcmp(key, "pty") || !strcmp(key, "socket") ||
		   !strcmp(key, "link")) {
		err = xvb_param_bad(&c->m, key, NULL);
	} else {
		err = xvb_param_unknown(&c->m, key, NULL);
	}
	return err;
}

static void con_input_cb(void *arg, int fd, uint32_t events);

/* Watch in_fd for input exactly when it could be delivered. */
static void con_watch_input(struct console *c)
{
	bool want = c->vdev && !c->in_eof && c->in_fd >= 0 && !c->pend_len;
	int err;

	if (!c->in_watched) {
		if (!want)
			return;
		err = xvb_evloop_add(c->m.loop, c->in_fd, EPOLLIN, con_input_cb, c);
		if (err) {
			xvb_model_warn(&c->m, "input cannot be polled (%s): ignored",
				       strerror(-err));
			c->in_eof = true;
			return;
		}
		c->in_watched = c->in_on = true;
	} else if (want != c->in_on && !xvb_evloop_mod(c->m.loop, c->in_fd, want ? EPOLLIN : 0)) {
		c->in_on = want;
	}
}

static void con_unwatch_input(struct console *c)
{
	if (c->in_watched)
		xvb_evloop_del(c->m.loop, c->in_fd);
	c->in_watched = c->in_on = false;
}

static void con_drop_client(struct console *c, const char *why)
{
	xvb_model_info(&c->m, "client disconnected (%s)", why);
	con_unwatch_input(c);
	close(c->client);
	c->client = c->in_fd = c->out_fd = -1;
	xvb_evloop_mod(c->m.loop, c->listen_fd, EPOLLIN);
}

/* Give pending input to the driver as far as it has posted buffers. */
static void con_rx_deliver(struct console *c)
{
	struct xvb_req req;
	bool pushed = false;
	size_t n;
	int r;

	while (c->pend_len && c->vdev) {
		r = xvb_pop(c->vdev, CON_RXQ, &req);
		if (r == -EINVAL)
			continue;
		if (r <= 0)
			break;	/* no buffer (wait for notify), or broken */
		n = xvb_buf_to_iov(req.in, req.nin, 0, c->pending + c->pend_off, c->pend_len);
		xvb_push(c->vdev, &req, (uint32_t)n);
		pushed = true;
		c->pend_off += n;
		c->pend_len -= n;
	}
	if (!c->pend_len)
		c->pend_off = 0;
	if (pushed)
		xvb_flush(c->vdev, CON_RXQ);
	con_watch_input(c);
}

static void con_input_cb(void *arg, int fd, uint32_t events)
{
	struct console *c = arg;
	ssize_t n;

	if (c->pend_len) {	/* cannot happen: we are paused then */
		con_watch_input(c);
		return;
	}
	n = read(fd, c->pending, sizeof(c->pending));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		const char *why = n ? strerror(errno) : "end of file";

		if (c->mode == CON_SOCKET) {
			con_drop_client(c, why);
			return;
		}
		xvb_model_info(&c->m, "input: %s, no longer read", why);
		c->in_eof = true;
		con_unwatch_input(c);
		return;
	}
	c->pend_off = 0;
	c->pend_len = (size_t)n;
	con_rx_deliver(c);
}

static void con_output(struct console *c, const char *buf, size_t len)
{
	while (len && c->out_fd >= 0) {
		ssize_t n = c->mode == CON_SOCKET ? send(c->out_fd, buf, len, MSG_NOSIGNAL) :
						   write(c->out_fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			break;	/* reader too slow: drop the rest */
		} else if (c->mode == CON_SOCKET) {
			con_drop_client(c, n ? strerror(errno) : "write returned 0");
		} else {
			xvb_model_warn(&c->m, "output: %s, output dropped from now on",
				       n ? strerror(errno) : "write returned 0");
			c->out_fd = -1;
		}
	}
	c->tx_dropped += len;
}

static void con_listen_again(struct console *c);

static void con_tx(struct console *c)
{
	struct xvb_req req;
	unsigned int i;
	int r;

	con_listen_again(c);	/* output to show: worth another try */
	while ((r = xvb_pop(c->vdev, CON_TXQ, &req)) != 0) {
		if (r == -EINVAL)
			continue;
		if (r < 0)
			break;
		for (i = 0; i < req.nout; i++)
			con_output(c, req.out[i].iov_base, req.out[i].iov_len);
		xvb_push(c->vdev, &req, 0);
	}
	xvb_flush(c->vdev, CON_TXQ);
}

/*
 * No descriptor for a new client (EMFILE, ENFILE): refuse it with the spare
 * (xvb_refuse_with_spare: the client sees end of file and may try again);
 * without a spare, stop listening until the guest next writes output
 * (con_listen_again), rather than spin on a readable socket.
 */
static void con_refuse_client(struct console *c, int err)
{
	if (xvb_refuse_with_spare(c->listen_fd, &c->spare)) {
		xvb_model_warn(&c->m, "client refused: %s", strerror(err));
	} else if (!xvb_evloop_mod(c->m.loop, c->listen_fd, 0)) {
		c->listen_paused = true;
		xvb_model_warn(&c->m, "not listening for clients: %s", strerror(err));
	}
}

/* After con_refuse_client paused the socket: listen again. */
static void con_listen_again(struct console *c)
{
	if (!c->listen_paused)
		return;
	if (c->spare < 0)
		c->spare = xvb_spare_open();
	if (!xvb_evloop_mod(c->m.loop, c->listen_fd, EPOLLIN))
		c->listen_paused = false;
}

static void con_accept_cb(void *arg, int fd, uint32_t events)
{
	struct console *c = arg;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			con_refuse_client(c, errno);
		else
			xvb_model_dbg(&c->m, "accept: %s", strerror(errno));
		return;
	}
	if (c->client >= 0) {	/* cannot happen: we are paused then */
		close(cfd);
		return;
	}
	c->client = c->in_fd = c->out_fd = cfd;
	xvb_evloop_mod(c->m.loop, c->listen_fd, 0);	/* one client at a time */
	xvb_model_info(&c->m, "client connected");
	con_watch_input(c);
}

static int con_open_pty(struct console *c)
{
	struct termios t;
	struct stat st;
	char pts[128];
	int err;

	if (openpty(&c->master, &c->slave, NULL, NULL, NULL) < 0 ||
	    ptsname_r(c->master, pts, sizeof(pts)) != 0)
		goto fail_errno;
	if (tcgetattr(c->slave, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(c->slave, TCSANOW, &t);
	}
	if (fcntl(c->master, F_SETFL, O_NONBLOCK) < 0 || fcntl(c->master, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(c->slave, F_SETFD, FD_CLOEXEC) < 0)
		goto fail_errno;
	c->in_fd = c->out_fd = c->master;
	xvb_model_info(&c->m, "console on %s", pts);
	if (!c->link_path)
		return 0;
	/* Replace a stale link from an earlier run, but nothing else. */
	if (lstat(c->link_path, &st) == 0 && S_ISLNK(st.st_mode))
		unlink(c->link_path);
	if (symlink(pts, c->link_path) < 0) {
		err = -errno;
		xvb_model_err(&c->m, "link: cannot create %s: %s", c->link_path, strerror(-err));
		free(c->link_path);
		c->link_path = NULL;	/* not ours to remove */
		return err;
	}
	return 0;
fail_errno:
	err = -errno;
	xvb_model_err(&c->m, "pty: %s", strerror(-err));
	return err;
}

static int con_open_socket(struct console *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int err;

	if (strlen(c->sock_path) >= sizeof(sa.sun_path)) {
		xvb_model_err(&c->m, "socket: path too long: %s", c->sock_path);
		return -EINVAL;
	}
	strcpy(sa.sun_path, c->sock_path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0)
		goto fail_errno;
	/* Replace a stale socket from an earlier run, but nothing else. */
	if (lstat(c->sock_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(c->sock_path);
	if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail_errno;
	if (listen(c->listen_fd, 1) < 0)
		goto fail_unlink;
	err = xvb_evloop_add(c->m.loop, c->listen_fd, EPOLLIN, con_accept_cb, c);
	if (err) {
		errno = -err;
		goto fail_unlink;
	}
	c->spare = xvb_spare_open();	/* -1: we cope */
	xvb_model_info(&c->m, "console on socket %s", c->sock_path);
	return 0;
fail_unlink:
	err = errno;
	unlink(c->sock_path);
	errno = err;
fail_errno:
	err = -errno;
	xvb_model_err(&c->m, "socket: %s: %s", c->sock_path, strerror(-err));
	close(c->listen_fd);
	c->listen_fd = -1;
	free(c->sock_path);
	c->sock_path = NULL;	/* nothing of ours to unlink */
	return err;
}

static void con_destroy(void *priv)
{
	struct console *c = priv;

	if (!c)
		return;
	con_unwatch_input(c);
	if (c->listen_fd >= 0) {
		xvb_evloop_del_close(c->m.loop, &c->listen_fd);
		unlink(c->sock_path);
	}
	if (c->client >= 0)
		close(c->client);
	if (c->spare >= 0)
		close(c->spare);
	if (c->master >= 0)
		close(c->master);
	if (c->slave >= 0)
		close(c->slave);
	if (c->link_path && c->mode == CON_PTY && c->master >= 0)
		unlink(c->link_path);
	if (c->tx_dropped)
		xvb_model_dbg(&c->m, "%llu output bytes dropped",
			      (unsigned long long)c->tx_dropped);
	free(c->sock_path);
	free(c->link_path);
	free(c);
}

static int con_create(const char *params, const struct xvb_model_env *env, void **priv)
{
	struct console *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->master = c->slave = c->listen_fd = c->client = c->in_fd = c->out_fd = c->spare = -1;
	err = xvb_model_start(&c->m, env, "console", params, con_param, c);
	if (err)
		goto fail;
	err = -EINVAL;
	if (c->mode == CON_NONE) {
		xvb_model_err(&c->m, "one of the parameters stdio, pty, socket is needed");
		goto fail;
	}
	if (c->link_path && c->mode != CON_PTY) {
		xvb_model_err(&c->m, "parameter 'link' needs 'pty'");
		free(c->link_path);
		c->link_path = NULL;
		goto fail;
	}
	if (!c->m.loop) {
		xvb_model_err(&c->m, "no event loop");
		goto fail;
	}
	if (c->mode == CON_STDIO) {
		c->in_fd = STDIN_FILENO;
		c->out_fd = STDOUT_FILENO;
		err = 0;
	} else if (c->mode == CON_PTY) {
		err = con_open_pty(c);
	} else {
		err = con_open_socket(c);
	}
	if (err)
		goto fail;
	*priv = c;
	return 0;
fail:
	con_destroy(c);
	return err;
}

static uint64_t con_features(void *priv)
{
	return 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE;
}

static void con_get_config(void *priv, uint8_t *cfg)
{
	memset(cfg, 0, sizeof(struct virtio_console_config));
}

/* Only emerg_wr, whole: its low byte is console output.  0 or -EPERM. */
static int con_set_config(void *priv, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct console *c = priv;

	if (off != CON_EMERG_OFF || len != CON_EMERG_LEN)
		return -EPERM;
	con_output(c, (const char *)data, 1);	/* little-endian: the low byte first */
	return 0;
}

static int con_activate(void *priv, struct xvb_vdev *vdev, uint64_t features)
{
	struct console *c = priv;

	c->vdev = vdev;
	/* Input kept across a reset waits for the core's first kick: xvb_pop()
	 * does not serve us before activate() has returned. */
	con_watch_input(c);
	return 0;
}

static void con_reset(void *priv)
{
	struct console *c = priv;

	c->vdev = NULL;
	con_watch_input(c);	/* pauses input; pending bytes are kept */
}

static void con_notify(void *priv, unsigned int q)
{
	struct console *c = priv;

	if (!c->vdev)
		return;
	if (q == CON_RXQ)
		con_rx_deliver(c);
	else if (q == CON_TXQ)
		con_tx(c);
}

const struct xvb_model_ops xvb_console_ops = {
	.type = "console",
	.device_id = VIRTIO_ID_CONSOLE,
	.num_queues = 2,
	.queue_size = CON_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_console_config),
	.create = con_create,
	.destroy = con_destroy,
	.features = con_features,
	.get_config = con_get_config,
	.set_config = con_set_config,
	.activate = con_activate,
	.reset = con_reset,
	.notify = con_notify,
};
