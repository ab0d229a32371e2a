package io.vblk.virtio.vhost;

import static io.vblk.virtio.vhost.VhostUser.*;
import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A live server on a real unix socket path: one connection at a time, the next accepted after a
 * protocol error, socket removed on close; and a fuzz run of mutated message streams after which
 * the server still serves a clean handshake and has leaked no fd.
 */
@Timeout(60)
class VhostUserServerTest {
    final List<String> logs = new CopyOnWriteArrayList<>();

    @Test
    void acceptsTheNextConnectionAfterAProtocolError(@TempDir Path dir) throws Exception {
        Path sp = dir.resolve("v.sock");
        RecordingBackend backend = new RecordingBackend(1);
        try (VhostUserServer s = VhostUserServer.start(sp, backend, logs::add)) {
            try (FrontEnd fe = new FrontEnd(UnixSocket.connect(sp))) {
                assertTrue((fe.getU64(GET_FEATURES) & (1L << F_PROTOCOL_FEATURES)) != 0);
                fe.send(SET_VRING_NUM, 0, FrontEnd.state(0, 8));   // before SET_OWNER
                assertTrue(fe.closedByPeer());
            }
            try (FrontEnd fe = new FrontEnd(UnixSocket.connect(sp))) {
                assertEquals(1, fe.getU64(GET_QUEUE_NUM));
            }
            waitFor(() -> s.connections() == 2);
        }
        assertFalse(Files.exists(sp), "socket removed");
        assertTrue(logs.stream().anyMatch(l -> l.contains("protocol error")), logs.toString());
    }

    static String fdTargets() {
        StringBuilder sb = new StringBuilder();
        try (var st = Files.list(Path.of("/proc/self/fd"))) {
            st.forEach(p -> { try { sb.append(p.getFileName()).append("->").append(Files.readSymbolicLink(p)).append(' '); } catch (Exception e) { } });
        } catch (Exception e) { sb.append(e); }
        return sb.toString();
    }

    static void waitFor(java.util.function.BooleanSupplier c) throws InterruptedException {
        for (int i = 0; i < 500 && !c.getAsBoolean(); i++) Thread.sleep(10);
        assertTrue(c.getAsBoolean());
    }

    /** A QEMU-like stream of valid messages (fds attached where the message needs them). */
    record Msg(byte[] bytes, boolean wantsFd) {}

    static List<Msg> validStream() {
        return List.of(
                new Msg(FrontEnd.msg(GET_FEATURES, 0, new byte[0]), false),
                new Msg(FrontEnd.msg(GET_PROTOCOL_FEATURES, 0, new byte[0]), false),
                new Msg(FrontEnd.msg(SET_PROTOCOL_FEATURES, 0, FrontEnd.u64(SUPPORTED_PROTOCOL_FEATURES)), false),
                new Msg(FrontEnd.msg(GET_QUEUE_NUM, 0, new byte[0]), false),
                new Msg(FrontEnd.msg(SET_OWNER, 0, new byte[0]), false),
                new Msg(FrontEnd.msg(SET_VRING_CALL, 0, FrontEnd.u64(0)), true),
                new Msg(FrontEnd.msg(SET_FEATURES, FLAG_NEED_REPLY, FrontEnd.u64((1L << 32) | (1L << F_PROTOCOL_FEATURES))), false),
                new Msg(FrontEnd.msg(ADD_MEM_REG, FLAG_NEED_REPLY, FrontEnd.region(0, 1 << 20, 0x7f0000000000L, 0)), true),
                new Msg(FrontEnd.msg(SET_VRING_NUM, 0, FrontEnd.state(0, 8)), false),
                new Msg(FrontEnd.msg(SET_VRING_BASE, 0, FrontEnd.state(0, 0)), false),
                new Msg(FrontEnd.msg(SET_VRING_ADDR, 0, FrontEnd.addr(0, 0x7f0000001000L, 0x7f0000003000L, 0x7f0000002000L)), false),
                new Msg(FrontEnd.msg(SET_VRING_KICK, 0, FrontEnd.u64(0)), true),
                new Msg(FrontEnd.msg(SET_VRING_ENABLE, 0, FrontEnd.state(0, 1)), false),
                new Msg(FrontEnd.msg(GET_CONFIG, 0, new byte[] {0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), false),
                new Msg(FrontEnd.msg(GET_VRING_BASE, 0, FrontEnd.state(0, 0)), false));
    }

    @Test
    void fuzzedStreamsNeverCrashOrLeak(@TempDir Path dir) throws Exception {
        Path sp = dir.resolve("f.sock");
        RecordingBackend backend = new RecordingBackend(2);
        int memfd = io.vblk.aio.Native.LIBC.memfd_create("fuzz-ram", MFD_CLOEXEC);
        assertEquals(0, io.vblk.aio.Native.LIBC.ftruncate(memfd, 1 << 20));
        long fdsBefore = -1;
        Random rnd = new Random(Long.getLong("vblk.fuzz.seed", 42));
        int rounds = Integer.getInteger("vblk.fuzz.rounds", 300);
        try (VhostUserServer s = VhostUserServer.start(sp, backend, l -> {})) {
            for (int round = 0; round < rounds; round++) {
                if (round == 30) {   // baseline once the JVM has loaded what it needs (jar files are fds too)
                    waitFor(() -> true);
                    Thread.sleep(100);
                    fdsBefore = UnixSocketTest.openFds();
                }
                List<Msg> stream = validStream();
                try (FrontEnd fe = new FrontEnd(UnixSocket.connect(sp))) {
                    int mutateAt = rnd.nextInt(stream.size());
                    for (int i = 0; i < stream.size(); i++) {
                        Msg m = stream.get(i);
                        byte[] b = m.bytes().clone();
                        int[] fds = m.wantsFd() ? new int[] {m.bytes()[0] == ADD_MEM_REG ? memfd : FrontEnd.eventfd()} : new int[0];
                        if (i == mutateAt) {
                            switch (rnd.nextInt(5)) {
                                case 0 -> { for (int k = 0; k < 1 + rnd.nextInt(4); k++) b[rnd.nextInt(b.length)] ^= (byte) (1 << rnd.nextInt(8)); }
                                case 1 -> b = java.util.Arrays.copyOf(b, Math.max(1, rnd.nextInt(b.length)));   // truncated, then EOF
                                case 2 -> { b = java.util.Arrays.copyOf(b, b.length + 1 + rnd.nextInt(64)); }   // trailing garbage
                                case 3 -> { fds = java.util.Arrays.copyOf(fds, fds.length + 2); fds[fds.length - 2] = FrontEnd.eventfd(); fds[fds.length - 1] = FrontEnd.eventfd(); }   // extra fds
                                default -> { b[rnd.nextInt(b.length)] = (byte) rnd.nextInt(256); }
                            }
                        }
                        long r = fe.sock.send(b, 0, b.length, fds);
                        for (int f : fds) if (f != memfd) io.vblk.aio.Native.LIBC.close(f);
                        if (r < 0) break;   // the server already closed on us
                        if (i == mutateAt && rnd.nextBoolean()) break;
                    }
                }
            }
            // after all that, a clean front-end still gets served
            try (FrontEnd fe = new FrontEnd(UnixSocket.connect(sp))) {
                assertEquals(2, fe.getU64(GET_QUEUE_NUM));
            }
            waitFor(() -> s.connections() == rounds + 1);
        }
        // the server's listening socket is closed too now; everything else must be back to the baseline
        long base = fdsBefore - 1;
        for (int i = 0; i < 100 && UnixSocketTest.openFds() != base; i++) Thread.sleep(20);
        assertEquals(base, UnixSocketTest.openFds(), () -> "no fd leaked by the server across fuzzed connections: " + fdTargets());
        io.vblk.aio.Native.LIBC.close(memfd);
    }
}
