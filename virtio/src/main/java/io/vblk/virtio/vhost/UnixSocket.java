package io.vblk.virtio.vhost;

import static io.vblk.virtio.vhost.VhostUser.*;

import io.vblk.aio.LibC;
import io.vblk.aio.Native;
import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A blocking AF_UNIX stream socket that carries file descriptors (SCM_RIGHTS), which the JDK's own
 * unix channels cannot do. vhost-user needs it for memfd regions and eventfds. The msghdr, iovec,
 * cmsghdr and sockaddr_un structures are laid out by hand in one native scratch block per socket
 * (64-bit Linux ABI: msghdr 56 bytes, cmsghdr 16-byte header, CMSG data aligned to 8).
 *
 * <p>Counterpart of QEMU's io/channel-socket.c qio_channel_socket_readv/writev with fds. One thread
 * sends and one thread receives at a time: {@link #send} and {@link #recv} each lock their own half.
 */
public final class UnixSocket implements AutoCloseable {
    private static final LibC C = Native.LIBC;

    /** Most fds we accept in one message; more set MSG_CTRUNC and fail the receive. */
    public static final int MAX_FDS = 32;
    private static final int CMSG_HDR = 16;
    /** Most fds {@link #send} attaches (the kernel allows 253). */
    public static final int MAX_SEND_FDS = 64;
    private static final int CONTROL_LEN = CMSG_HDR + align8(MAX_SEND_FDS * 4);
    private static final int RECV_CONTROL_LEN = CMSG_HDR + align8(MAX_FDS * 4);
    private static final int SUN_PATH_MAX = 108;

    // scratch layout inside one native block per direction: msghdr @0, iovec @64, control @128, data @(128+CONTROL_LEN)
    private static final int MSGHDR = 0, IOV = 64, CONTROL = 128, DATA = CONTROL + CONTROL_LEN;
    private static final int DATA_LEN = 8192;

    private volatile int fd;
    private final NativeBuffer sendScratch;  // guarded by sendLock
    private final NativeBuffer recvScratch;  // guarded by recvLock
    private final Object sendLock = new Object();
    private final Object recvLock = new Object();

    private UnixSocket(int fd) {
        this.fd = fd;
        this.sendScratch = NativeBuffer.allocate(DATA + DATA_LEN, 64);
        this.recvScratch = NativeBuffer.allocate(DATA + DATA_LEN, 64);
    }

    static int align8(int n) { return (n + 7) & ~7; }

    public int fd() { return fd; }

    /** Wraps an fd we own (from socketpair, accept or connect). */
    public static UnixSocket adopt(int fd) { return new UnixSocket(fd); }

    /** A connected pair (socketpair(AF_UNIX, SOCK_STREAM)), for tests and in-process peers. */
    public static UnixSocket[] pair() throws BlockException {
        try (NativeBuffer sv = NativeBuffer.allocate(8, 8)) {
            Native.check(C.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv.address()), "socketpair");
            return new UnixSocket[] {adopt(NativeMemory.getIntLE(sv.address())), adopt(NativeMemory.getIntLE(sv.address() + 4))};
        }
    }

    /** A listening socket bound to {@code path} (which must not exist). */
    public static UnixSocket listen(Path path, int backlog) throws BlockException {
        int s = (int) Native.check(C.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
        try (NativeBuffer sa = sockaddr(path)) {
            long r = C.bind(s, sa.address(), (int) sa.size());
            if (r == -1) {
                int e = Native.errno();
                C.close(s);
                throw new BlockException(e, "bind(" + path + "): " + Errno.describe(e));
            }
        }
        if (C.listen(s, backlog) == -1) {
            int e = Native.errno();
            C.close(s);
            throw new BlockException(e, "listen(" + path + "): " + Errno.describe(e));
        }
        return adopt(s);
    }

    /** Connects to a listening socket at {@code path}. */
    public static UnixSocket connect(Path path) throws BlockException {
        int s = (int) Native.check(C.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
        try (NativeBuffer sa = sockaddr(path)) {
            if (C.connect(s, sa.address(), (int) sa.size()) == -1) {
                int e = Native.errno();
                C.close(s);
                throw new BlockException(e, "connect(" + path + "): " + Errno.describe(e));
            }
        }
        return adopt(s);
    }

    private static NativeBuffer sockaddr(Path path) throws BlockException {
        byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
        if (p.length >= SUN_PATH_MAX) {
            throw new BlockException(Errno.EINVAL, "socket path longer than " + (SUN_PATH_MAX - 1) + " bytes: " + path);
        }
        NativeBuffer sa = NativeBuffer.allocate(2 + p.length + 1, 8);
        NativeMemory.putShortLE(sa.address(), (short) AF_UNIX);
        sa.copyFrom(p, 0, 2, p.length);
        return sa;
    }

    /** Blocks for the next connection; returns it, or a negative errno (EINVAL after {@link #shutdown}). */
    public UnixSocket accept() throws BlockException {
        while (true) {
            int c = C.accept4(fd, 0, 0, SOCK_CLOEXEC);
            if (c >= 0) return adopt(c);
            int e = Native.errno();
            if (e == Errno.EINTR) continue;
            throw new BlockException(e, "accept: " + Errno.describe(e));
        }
    }

    /**
     * Sends {@code len} bytes of {@code data} with {@code fds} attached to the first byte. Returns
     * the byte count or a negative errno (EPIPE when the peer has gone; no SIGPIPE is raised).
     */
    public long send(byte[] data, int off, int len, int... fds) {
        if (len > DATA_LEN || fds.length > MAX_SEND_FDS) return -Errno.EINVAL;
        synchronized (sendLock) {
            long base = sendScratch.address();
            sendScratch.copyFrom(data, off, DATA, len);
            long sent = 0;
            boolean first = true;
            while (sent < len || (first && len == 0)) {
                buildMsg(base, DATA + sent, len - sent, first ? fds.length : 0, first && fds.length > 0 ? CONTROL_LEN : 0);
                if (first && fds.length > 0) {
                    long cm = base + CONTROL;
                    NativeMemory.putLongLE(cm, CMSG_HDR + 4L * fds.length);
                    NativeMemory.putIntLE(cm + 8, SOL_SOCKET);
                    NativeMemory.putIntLE(cm + 12, SCM_RIGHTS);
                    for (int i = 0; i < fds.length; i++) NativeMemory.putIntLE(cm + CMSG_HDR + 4L * i, fds[i]);
                    NativeMemory.putLongLE(base + MSGHDR + 40, CMSG_HDR + align8(4 * fds.length));
                }
                long r = C.sendmsg(fd, base + MSGHDR, MSG_NOSIGNAL);
                if (r < 0) {
                    int e = Native.errno();
                    if (e == Errno.EINTR) continue;
                    return -e;
                }
                sent += r;
                first = false;
                if (len == 0) break;
            }
            return sent;
        }
    }

    private void buildMsg(long base, long dataOff, long dataLen, int nfds, int controlLen) {
        NativeMemory.fill(base, CONTROL, (byte) 0);
        NativeMemory.putLongLE(base + IOV, base + dataOff);
        NativeMemory.putLongLE(base + IOV + 8, dataLen);
        NativeMemory.putLongLE(base + MSGHDR + 16, base + IOV);   // msg_iov
        NativeMemory.putLongLE(base + MSGHDR + 24, 1);            // msg_iovlen
        if (controlLen > 0) {
            NativeMemory.fill(base + CONTROL, CONTROL_LEN, (byte) 0);
            NativeMemory.putLongLE(base + MSGHDR + 32, base + CONTROL); // msg_control
            NativeMemory.putLongLE(base + MSGHDR + 40, controlLen);     // msg_controllen
        }
    }

    /** Result of one {@link #recv}: bytes read (0 = orderly EOF, negative = -errno) and the fds that came with them. */
    public record Received(int bytes, int[] fds) {
        public void closeFds() { for (int f : fds) Native.LIBC.close(f); }
    }

    private static final int[] NO_FDS = new int[0];

    /**
     * Reads up to {@code len} bytes (one recvmsg) into {@code buf}, collecting any SCM_RIGHTS fds
     * (close-on-exec). A truncated control message (more than {@link #MAX_FDS} fds) closes what did
     * arrive and returns -EMSGSIZE.
     */
    public Received recv(byte[] buf, int off, int len) {
        len = Math.min(len, DATA_LEN);
        synchronized (recvLock) {
            long base = recvScratch.address();
            while (true) {
                buildMsg(base, DATA, len, 0, RECV_CONTROL_LEN);
                long r = C.recvmsg(fd, base + MSGHDR, MSG_CMSG_CLOEXEC);
                if (r < 0) {
                    int e = Native.errno();
                    if (e == Errno.EINTR) continue;
                    return new Received(-e, NO_FDS);
                }
                int[] fds = collectFds(base);
                int flags = NativeMemory.getIntLE(base + MSGHDR + 48);
                if ((flags & MSG_CTRUNC) != 0) {
                    for (int f : fds) C.close(f);
                    return new Received(-Errno.EMSGSIZE, NO_FDS);
                }
                recvScratch.copyTo(DATA, buf, off, (int) r);
                return new Received((int) r, fds);
            }
        }
    }

    private static int[] collectFds(long base) {
        long controlLen = NativeMemory.getLongLE(base + MSGHDR + 40);
        int[] out = NO_FDS;
        long p = 0;
        while (p + CMSG_HDR <= controlLen) {
            long cm = base + CONTROL + p;
            long cmLen = NativeMemory.getLongLE(cm);
            if (cmLen < CMSG_HDR || p + cmLen > controlLen) break;
            if (NativeMemory.getIntLE(cm + 8) == SOL_SOCKET && NativeMemory.getIntLE(cm + 12) == SCM_RIGHTS) {
                int n = (int) ((cmLen - CMSG_HDR) / 4);
                int k = out.length;
                out = Arrays.copyOf(out, k + n);
                for (int i = 0; i < n; i++) out[k + i] = NativeMemory.getIntLE(cm + CMSG_HDR + 4L * i);
            }
            p += align8((int) cmLen);
        }
        return out;
    }

    /**
     * Reads exactly {@code len} bytes. Any fd that rides along is appended to {@code fdsOut} when
     * it is non-null, or closed. Returns {@code len}, 0 on EOF before the first byte, -EPIPE on EOF
     * in the middle, or -errno.
     */
    public int recvFully(byte[] buf, int off, int len, java.util.List<Integer> fdsOut) {
        int got = 0;
        while (got < len) {
            Received r = recv(buf, off + got, len - got);
            for (int f : r.fds()) {
                if (fdsOut != null) fdsOut.add(f); else C.close(f);
            }
            if (r.bytes() < 0) return r.bytes();
            if (r.bytes() == 0) return got == 0 ? 0 : -Errno.EPIPE;
            got += r.bytes();
        }
        return len;
    }

    /** Wakes any thread blocked in accept/recv on this socket (shutdown(SHUT_RDWR)). */
    public void shutdown() {
        int f = fd;
        if (f >= 0) C.shutdown(f, SHUT_RDWR);
    }

    @Override
    public void close() {
        synchronized (this) {
            if (fd < 0) return;
            C.shutdown(fd, SHUT_RDWR);
            C.close(fd);
            fd = -1;
        }
        synchronized (sendLock) { sendScratch.close(); }
        synchronized (recvLock) { recvScratch.close(); }
    }
}
