package io.vblk.virtio.vhost;

import static io.vblk.virtio.vhost.VhostUser.*;
import static org.junit.jupiter.api.Assertions.*;

import io.vblk.aio.LibC;
import io.vblk.aio.Native;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The protocol handler against a Java front-end over a real socketpair, with a memfd as guest RAM
 * and eventfds for kick/call: QEMU's message sequence, ring state rules, and bad input.
 */
@org.junit.jupiter.api.Timeout(20)
class VhostUserConnectionTest {
    static final LibC C = Native.LIBC;
    static final long RAM = 1 << 20;
    static final long UVA = 0x7f12_3400_0000L;
    static final long GPA = 0x10_0000L;
    static final int QSIZE = 8;

    RecordingBackend backend;
    FrontEnd fe;
    Thread thread;
    VhostUserConnection conn;
    int memfd;
    final List<String> logs = new CopyOnWriteArrayList<>();
    long fdsBefore;

    @BeforeEach
    void setUp() throws Exception {
        fdsBefore = UnixSocketTest.openFds();
        backend = new RecordingBackend(2);
        UnixSocket[] p = UnixSocket.pair();
        fe = new FrontEnd(p[0]);
        Consumer<String> log = logs::add;
        conn = new VhostUserConnection(p[1], backend, log);
        thread = new Thread(conn, "test-conn");
        thread.start();
        memfd = C.memfd_create("guest-ram", MFD_CLOEXEC);
        assertEquals(0, C.ftruncate(memfd, RAM));
        try (NativeBuffer b = NativeBuffer.allocate(8, 8)) {
            NativeMemory.putLongLE(b.address(), 0xfeedface_cafe0001L);
            assertEquals(8, C.pwrite(memfd, b.address(), 8, 0x1000));   // first descriptor's addr field
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        fe.close();
        thread.join(5000);
        assertFalse(thread.isAlive(), "connection thread ended");
        C.close(memfd);
        assertEquals(fdsBefore, UnixSocketTest.openFds(), "no fd leaked; logs: " + logs);
    }

    void handshake() {
        long f = fe.getU64(GET_FEATURES);
        assertTrue((f & (1L << F_PROTOCOL_FEATURES)) != 0);
        long pf = fe.getU64(GET_PROTOCOL_FEATURES);
        assertEquals(SUPPORTED_PROTOCOL_FEATURES, pf);
        fe.send(SET_PROTOCOL_FEATURES, 0, FrontEnd.u64(pf));
        assertEquals(2, fe.getU64(GET_QUEUE_NUM));
        assertEquals(MAX_MEM_SLOTS, fe.getU64(GET_MAX_MEM_SLOTS));
        fe.send(SET_OWNER, 0, new byte[0]);
    }

    void setFeatures(long f) { assertEquals(0, fe.acked(SET_FEATURES, FrontEnd.u64(f))); }

    void addRam() { assertEquals(0, fe.acked(ADD_MEM_REG, FrontEnd.region(GPA, RAM, UVA, 0), memfd)); }

    int kick;
    int call;

    void startRing0() {
        call = FrontEnd.eventfd();
        fe.send(SET_VRING_CALL, 0, FrontEnd.u64(0), call);
        fe.send(SET_VRING_NUM, 0, FrontEnd.state(0, QSIZE));
        fe.send(SET_VRING_BASE, 0, FrontEnd.state(0, 3));
        fe.send(SET_VRING_ADDR, 0, FrontEnd.addr(0, UVA + 0x1000, UVA + 0x3000, UVA + 0x2000));
        kick = FrontEnd.eventfd();
        fe.send(SET_VRING_KICK, 0, FrontEnd.u64(0), kick);
        assertEquals(0, fe.acked(SET_VRING_ENABLE, FrontEnd.state(0, 1)));   // need_reply acts as a barrier
    }

    @Test
    void regionAddedUnderARunningRingReachesTheDevice() throws Exception {
        handshake();
        setFeatures((1L << 32) | (1L << F_PROTOCOL_FEATURES));
        addRam();
        startRing0();
        int hot = C.memfd_create("hotplug", MFD_CLOEXEC);
        try {
            assertEquals(0, C.ftruncate(hot, 65536));
            try (NativeBuffer b = NativeBuffer.allocate(8, 8)) {
                NativeMemory.putLongLE(b.address(), 0x5eed_0000_1234L);
                assertEquals(8, C.pwrite(hot, b.address(), 8, 0));
            }
            assertEquals(0, fe.acked(ADD_MEM_REG, FrontEnd.region(GPA + RAM, 65536, UVA + RAM, 0), hot));
            assertTrue(backend.events.contains("region added gpa 0x" + Long.toHexString(GPA + RAM)), backend.events.toString());
            assertEquals(0x5eed_0000_1234L, backend.addedRegionWord, "the device reads the new region's bytes");
            // with no ring running, an added region is only recorded in the table (the next start uses it)
            fe.send(SET_VRING_ENABLE, 0, FrontEnd.state(0, 0));
            fe.send(GET_VRING_BASE, 0, FrontEnd.state(0, 0));
            assertEquals(GET_VRING_BASE, fe.read().req());
            int n = backend.events.size();
            assertEquals(0, fe.acked(ADD_MEM_REG, FrontEnd.region(GPA + RAM + 65536, 65536, UVA + RAM + 65536, 0), hot));
            assertEquals(n, backend.events.size(), backend.events.toString());
        } finally {
            fe.close();
            thread.join(5000);
            C.close(hot);
            C.close(kick);
            C.close(call);
        }
    }

    @Test
    void qemuSequenceStartsAndStopsTheRing() throws Exception {
        handshake();
        setFeatures((1L << 32) | (1L << F_PROTOCOL_FEATURES) | (1L << 9));
        assertEquals((1L << 32) | (1L << 9), backend.acked, "bit 30 is not passed to the device");
        addRam();
        startRing0();
        assertTrue(backend.events.contains("start 0 size 8 base 3"), backend.events.toString());
        assertEquals(0xfeedface_cafe0001L, backend.firstDescAddr, "desc address translated through the memory table");
        // the call eventfd we passed got two signals: the connection's when it took the fd, the backend's on start
        assertEquals(2, readEventfd(call));
        // GET_CONFIG returns the device's bytes
        fe.send(GET_CONFIG, 0, ByteBuffer.allocate(12 + 60).order(ByteOrder.LITTLE_ENDIAN).putInt(0).putInt(60).putInt(0).array());
        FrontEnd.Reply cfg = fe.read();
        assertEquals(GET_CONFIG, cfg.req());
        assertEquals(12 + 60, cfg.payload().capacity());
        assertEquals(0x20, cfg.payload().get(12));
        assertEquals(2, cfg.payload().get(12 + 34));
        // SET_CONFIG writeback accepted, capacity refused (ack 1) without closing
        assertEquals(0, fe.acked(SET_CONFIG, ByteBuffer.allocate(13).order(ByteOrder.LITTLE_ENDIAN).putInt(32).putInt(1).putInt(0).put((byte) 1).array()));
        assertEquals(1, fe.acked(SET_CONFIG, ByteBuffer.allocate(13).order(ByteOrder.LITTLE_ENDIAN).putInt(0).putInt(1).putInt(0).put((byte) 1).array()));
        // stop: disable then GET_VRING_BASE returns the backend's next avail index
        fe.send(SET_VRING_ENABLE, 0, FrontEnd.state(0, 0));
        fe.send(GET_VRING_BASE, 0, FrontEnd.state(0, 0));
        FrontEnd.Reply base = fe.read();
        assertEquals(GET_VRING_BASE, base.req());
        assertEquals(0, base.payload().getInt(0));
        assertEquals(7, base.payload().getInt(4));
        assertEquals(1, backend.events.stream().filter(e -> e.equals("stop 0")).count(), backend.events.toString());
        // restart like the second vhost_dev_start after SeaBIOS: memory unchanged, new kick
        fe.send(SET_VRING_BASE, 0, FrontEnd.state(0, 7));
        int kick2 = FrontEnd.eventfd();
        fe.send(SET_VRING_KICK, 0, FrontEnd.u64(0), kick2);
        assertEquals(0, fe.acked(SET_VRING_ENABLE, FrontEnd.state(0, 1)));
        assertTrue(backend.events.contains("start 0 size 8 base 7"), backend.events.toString());
        fe.close();
        thread.join(5000);
        assertTrue(backend.events.contains("reset"));
        assertEquals("stop 0", backend.events.get(backend.events.size() - 2), "a dropped connection stops the running ring");
        for (int f : new int[] {kick, call, kick2}) C.close(f);
    }

    static long readEventfd(int fd) {
        try (NativeBuffer v = NativeBuffer.allocate(8, 8)) {
            long n = C.read(fd, v.address(), 8);
            return n == 8 ? NativeMemory.getLongLE(v.address()) : -1;   // -1: not signalled (EAGAIN)
        }
    }

    @Test
    void everyNewCallFdIsSignalledOnceForUsedEntriesAPreviousBackendLeftUnsignalled() throws Exception {
        handshake();
        setFeatures((1L << 32) | (1L << F_PROTOCOL_FEATURES));
        addRam();
        int call1 = FrontEnd.eventfd(), call2 = FrontEnd.eventfd();
        try {
            fe.send(SET_VRING_CALL, 0, FrontEnd.u64(0), call1);
            assertEquals(0, fe.acked(SET_VRING_NUM, FrontEnd.state(0, QSIZE)));   // barrier: SET_VRING_CALL was handled
            assertEquals(1, readEventfd(call1), "signalled once when the fd arrived, before any ring start");
            assertEquals(-1, readEventfd(call1), "and only once");
            // a replaced call fd (QEMU's mask/unmask swaps fds) gets its own signal; the old one none
            fe.send(SET_VRING_CALL, 0, FrontEnd.u64(0), call2);
            assertEquals(0, fe.acked(SET_VRING_NUM, FrontEnd.state(0, QSIZE)));
            assertEquals(1, readEventfd(call2));
            assertEquals(-1, readEventfd(call1));
            // no fd (polling mode call): nothing to signal, the connection stays up
            fe.send(SET_VRING_CALL, 0, FrontEnd.u64(VRING_NOFD_MASK));
            assertEquals(0, fe.acked(SET_VRING_NUM, FrontEnd.state(0, QSIZE)));
            assertEquals(-1, readEventfd(call2));
        } finally {
            fe.close();
            thread.join(5000);
            C.close(call1);
            C.close(call2);
        }
    }

    @Test
    void featuresWithoutBit30EnableAllRings() throws Exception {
        handshake();
        addRam();
        setFeatures(1L << 32);
        call = FrontEnd.eventfd();
        fe.send(SET_VRING_NUM, 0, FrontEnd.state(0, QSIZE));
        fe.send(SET_VRING_ADDR, 0, FrontEnd.addr(0, UVA + 0x1000, UVA + 0x3000, UVA + 0x2000));
        kick = FrontEnd.eventfd();
        fe.send(SET_VRING_KICK, 0, FrontEnd.u64(0), kick);
        assertEquals(2, fe.getU64(GET_QUEUE_NUM));   // round trip: the kick was processed
        assertTrue(backend.events.contains("start 0 size 8 base 0"), backend.events.toString());
        C.close(kick);
        C.close(call);
    }

    @Test
    void inflightRegionRoundTrip() throws Exception {
        handshake();
        byte[] req = ByteBuffer.allocate(INFLIGHT_SIZE).order(ByteOrder.LITTLE_ENDIAN).putLong(0).putLong(0).putShort((short) 2).putShort((short) 128).array();
        fe.send(GET_INFLIGHT_FD, 0, req);
        FrontEnd.Reply r = fe.read();
        assertEquals(GET_INFLIGHT_FD, r.req());
        assertEquals(1, r.fds().length);
        long mmapSize = r.payload().getLong(0);
        assertEquals(2 * InflightRegion.queueRegionSize(128), mmapSize);
        byte[] set = ByteBuffer.allocate(INFLIGHT_SIZE).order(ByteOrder.LITTLE_ENDIAN).putLong(mmapSize).putLong(0).putShort((short) 2).putShort((short) 128).array();
        assertEquals(0, fe.acked(SET_INFLIGHT_FD, set, r.fds()[0]));
        C.close(r.fds()[0]);
        setFeatures((1L << 32) | (1L << F_PROTOCOL_FEATURES));
        addRam();
        startRing0();
        assertTrue(logs.stream().anyMatch(l -> l.contains("inflight tracked")), logs.toString());
        C.close(kick);
        C.close(call);
    }

    @Test
    void configChangeNoticeGoesOutOnTheBackendChannel() throws Exception {
        handshake();
        UnixSocket[] ch = UnixSocket.pair();
        try (FrontEnd backendSide = new FrontEnd(ch[0])) {
            assertEquals(0, fe.acked(SET_BACKEND_REQ_FD, new byte[0], ch[1].fd()));
            C.close(ch[1].fd());   // the backend holds its own copy now (a plain close: shutdown would end the shared socket)
            backend.notifier.run();   // what VirtioBlkDevice.resized() triggers
            byte[] h = new byte[HEADER_SIZE];
            assertEquals(HEADER_SIZE, backendSide.sock.recvFully(h, 0, HEADER_SIZE, null));
            ByteBuffer b = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(BACKEND_CONFIG_CHANGE_MSG, b.getInt(0));
            assertEquals(VERSION, b.getInt(4) & FLAG_VERSION_MASK);
            assertEquals(0, b.getInt(8));
        }
    }

    // ---------------------------------------------------------------- bad input

    void expectClosed(String why) throws Exception {
        assertTrue(fe.closedByPeer(), why + ": connection must be closed");
        thread.join(5000);
        assertFalse(thread.isAlive());
        assertTrue(logs.stream().anyMatch(l -> l.contains("protocol error")), why + ": logged; " + logs);
    }

    @Test void unknownRequest() throws Exception { fe.send(99, 0, new byte[0]); expectClosed("unknown"); }

    @Test void wrongVersion() throws Exception {
        byte[] m = FrontEnd.msg(GET_FEATURES, 0, new byte[0]);
        m[4] = 2;
        fe.sock.send(m, 0, m.length);
        expectClosed("version 2");
    }

    @Test void sizeMismatch() throws Exception { handshake(); fe.send(SET_FEATURES, 0, new byte[4]); expectClosed("short SET_FEATURES"); }

    @Test void hugeSize() throws Exception {
        byte[] m = FrontEnd.msg(SET_FEATURES, 0, new byte[0]);
        m[8] = (byte) 0xff; m[9] = (byte) 0xff; m[10] = (byte) 0xff; m[11] = (byte) 0x7f;
        fe.sock.send(m, 0, m.length);
        expectClosed("2 GiB payload");
    }

    @Test void ringBeforeOwner() throws Exception { fe.send(SET_VRING_NUM, 0, FrontEnd.state(0, 8)); expectClosed("before SET_OWNER"); }

    @Test void queueIndexOutOfRange() throws Exception { handshake(); fe.send(SET_VRING_NUM, 0, FrontEnd.state(2, 8)); expectClosed("index 2 of 2"); }

    @Test void nonPowerOfTwo() throws Exception { handshake(); fe.send(SET_VRING_NUM, 0, FrontEnd.state(0, 100)); expectClosed("size 100"); }

    @Test void unofferedFeatures() throws Exception { handshake(); fe.send(SET_FEATURES, 0, FrontEnd.u64(1L << 34)); expectClosed("packed ring not offered"); }

    @Test void moreFdsThanRegions() throws Exception {
        handshake();
        byte[] t = ByteBuffer.allocate(8 + 32).order(ByteOrder.LITTLE_ENDIAN).putInt(1).putInt(0)
                .putLong(GPA).putLong(RAM).putLong(UVA).putLong(0).array();
        int e = FrontEnd.eventfd();
        fe.send(SET_MEM_TABLE, 0, t, memfd, e);
        C.close(e);
        expectClosed("2 fds for 1 region");
    }

    @Test void regionLargerThanTheFileIsRefusedOrMappedSafely() throws Exception {
        handshake();
        // size wraps the address space
        fe.send(ADD_MEM_REG, 0, FrontEnd.region(-4096, 8192, UVA, 0), memfd);
        expectClosed("wrapping region");
    }

    @Test void ringOutsideTheTable() throws Exception {
        handshake();
        addRam();
        fe.send(SET_VRING_NUM, 0, FrontEnd.state(0, QSIZE));
        fe.send(SET_VRING_ADDR, 0, FrontEnd.addr(0, UVA + RAM - 16, UVA + 0x3000, UVA + 0x2000));   // desc table runs past the end
        expectClosed("desc outside");
    }

    @Test void memoryTableChangeUnderRunningRing() throws Exception {
        handshake();
        setFeatures((1L << 32) | (1L << F_PROTOCOL_FEATURES));
        addRam();
        startRing0();
        fe.send(REM_MEM_REG, 0, FrontEnd.region(GPA, RAM, UVA, 0));
        expectClosed("REM_MEM_REG under a running ring");
        assertTrue(backend.events.contains("stop 0"));
        C.close(kick);
        C.close(call);
    }

    @Test void kickWithoutFd() throws Exception { handshake(); fe.send(SET_VRING_KICK, 0, FrontEnd.u64(VRING_NOFD_MASK)); expectClosed("polling kick"); }

    @Test void kickBeforeAddresses() throws Exception {
        handshake();
        setFeatures(1L << 32);   // rings enabled at once
        int k = FrontEnd.eventfd();
        fe.send(SET_VRING_KICK, 0, FrontEnd.u64(0), k);
        C.close(k);
        expectClosed("kick before addresses");
    }

    @Test void configOutOfRange() throws Exception {
        handshake();
        fe.send(GET_CONFIG, 0, ByteBuffer.allocate(12 + 16).order(ByteOrder.LITTLE_ENDIAN).putInt(250).putInt(16).putInt(0).array());
        expectClosed("config 250+16");
    }
}
