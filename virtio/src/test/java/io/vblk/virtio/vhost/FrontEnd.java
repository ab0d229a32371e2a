package io.vblk.virtio.vhost;

import static io.vblk.virtio.vhost.VhostUser.*;
import static org.junit.jupiter.api.Assertions.*;

import io.vblk.aio.Native;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/** A test vhost-user front-end: builds messages like QEMU's hw/virtio/vhost-user.c and reads replies. */
final class FrontEnd implements AutoCloseable {
    final UnixSocket sock;

    FrontEnd(UnixSocket sock) { this.sock = sock; }

    static byte[] msg(int req, int flags, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(HEADER_SIZE + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(req).putInt(VERSION | flags).putInt(payload.length).put(payload);
        return b.array();
    }

    static byte[] u64(long v) { return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array(); }

    static byte[] state(int index, int num) { return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(index).putInt(num).array(); }

    static byte[] addr(int index, long desc, long used, long avail) {
        return ByteBuffer.allocate(40).order(ByteOrder.LITTLE_ENDIAN).putInt(index).putInt(0).putLong(desc).putLong(used).putLong(avail).putLong(0).array();
    }

    static byte[] region(long gpa, long size, long uva, long off) {
        return ByteBuffer.allocate(40).order(ByteOrder.LITTLE_ENDIAN).putLong(0).putLong(gpa).putLong(size).putLong(uva).putLong(off).array();
    }

    void send(int req, int flags, byte[] payload, int... fds) {
        byte[] m = msg(req, flags, payload);
        assertEquals(m.length, sock.send(m, 0, m.length, fds), "send request " + req);
    }

    record Reply(int req, int flags, ByteBuffer payload, int[] fds) {}

    /** Reads one reply; null on EOF. */
    Reply read() {
        byte[] h = new byte[HEADER_SIZE];
        List<Integer> fds = new ArrayList<>();
        int r = sock.recvFully(h, 0, HEADER_SIZE, fds);
        if (r <= 0) return null;
        ByteBuffer hb = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
        int size = hb.getInt(8);
        byte[] p = new byte[size];
        if (size > 0) assertEquals(size, sock.recvFully(p, 0, size, fds));
        return new Reply(hb.getInt(0), hb.getInt(4), ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN),
                fds.stream().mapToInt(Integer::intValue).toArray());
    }

    long getU64(int req) {
        send(req, 0, new byte[0]);
        Reply r = read();
        assertNotNull(r, "reply to " + req);
        assertEquals(req, r.req());
        assertEquals(VERSION | FLAG_REPLY, r.flags());
        assertEquals(8, r.payload().capacity());
        return r.payload().getLong(0);
    }

    /** Sends with need_reply and returns the ack value. */
    long acked(int req, byte[] payload, int... fds) {
        send(req, FLAG_NEED_REPLY, payload, fds);
        Reply r = read();
        assertNotNull(r, "ack for " + req);
        assertEquals(req, r.req());
        return r.payload().getLong(0);
    }

    /** True once the backend has closed its end (EOF). */
    boolean closedByPeer() {
        byte[] b = new byte[1];
        UnixSocket.Received r = sock.recv(b, 0, 1);
        r.closeFds();
        return r.bytes() <= 0;
    }

    static int eventfd() { return Native.LIBC.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

    @Override
    public void close() { sock.close(); }
}
