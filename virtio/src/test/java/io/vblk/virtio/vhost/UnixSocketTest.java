package io.vblk.virtio.vhost;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.aio.LibC;
import io.vblk.aio.Native;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** SCM_RIGHTS fd passing over real AF_UNIX sockets: memfd and eventfd, both directions. */
class UnixSocketTest {
    private static final LibC C = Native.LIBC;

    static int memfdWith(long value) {
        int fd = C.memfd_create("t", VhostUser.MFD_CLOEXEC);
        assertTrue(fd >= 0);
        assertEquals(0, C.ftruncate(fd, 4096));
        try (NativeBuffer b = NativeBuffer.allocate(8, 8)) {
            NativeMemory.putLongLE(b.address(), value);
            assertEquals(8, C.pwrite(fd, b.address(), 8, 64));
        }
        return fd;
    }

    static long readAt64(int fd) {
        try (NativeBuffer b = NativeBuffer.allocate(8, 8)) {
            assertEquals(8, C.pread(fd, b.address(), 8, 64));
            return NativeMemory.getLongLE(b.address());
        }
    }

    @Test
    void passesMemfdAndEventfdBothWays() throws Exception {
        UnixSocket[] p = UnixSocket.pair();
        try (UnixSocket a = p[0]; UnixSocket b = p[1]) {
            int memfd = memfdWith(0x1122334455667788L);
            int efd = FrontEnd.eventfd();
            byte[] msg = "hello-fds".getBytes();
            assertEquals(msg.length, a.send(msg, 0, msg.length, memfd, efd));
            byte[] in = new byte[64];
            UnixSocket.Received r = b.recv(in, 0, in.length);
            assertEquals(msg.length, r.bytes());
            assertEquals("hello-fds", new String(in, 0, r.bytes()));
            assertEquals(2, r.fds().length);
            assertNotEquals(memfd, r.fds()[0], "the receiver gets new fd numbers");
            assertEquals(0x1122334455667788L, readAt64(r.fds()[0]), "received memfd shows the same file");
            // the eventfd is the same object: a write on the received copy is readable on the original
            try (NativeBuffer v = NativeBuffer.allocate(8, 8)) {
                NativeMemory.putLongLE(v.address(), 5);
                assertEquals(8, C.write(r.fds()[1], v.address(), 8));
                NativeMemory.putLongLE(v.address(), 0);
                assertEquals(8, C.read(efd, v.address(), 8));
                assertEquals(5, NativeMemory.getLongLE(v.address()));
            }
            // and back the other way
            int memfd2 = memfdWith(42);
            assertEquals(1, b.send(new byte[] {9}, 0, 1, memfd2));
            UnixSocket.Received back = a.recv(in, 0, 8);
            assertEquals(1, back.bytes());
            assertEquals(1, back.fds().length);
            assertEquals(42, readAt64(back.fds()[0]));
            r.closeFds();
            back.closeFds();
            for (int f : new int[] {memfd, efd, memfd2}) C.close(f);
        }
    }

    @Test
    void tooManyFdsIsRefusedWithoutLeaking() throws Exception {
        UnixSocket[] p = UnixSocket.pair();
        try (UnixSocket a = p[0]; UnixSocket b = p[1]) {
            int efd = FrontEnd.eventfd();
            int[] fds = new int[UnixSocket.MAX_FDS + 8];
            java.util.Arrays.fill(fds, efd);
            long before = openFds();
            assertEquals(1, a.send(new byte[] {1}, 0, 1, fds));
            UnixSocket.Received r = b.recv(new byte[1], 0, 1);
            assertEquals(-io.vblk.block.Errno.EMSGSIZE, r.bytes(), "a truncated control message is an error");
            assertEquals(0, r.fds().length);
            assertEquals(before, openFds(), "the fds that did arrive were closed");
            assertEquals(-io.vblk.block.Errno.EINVAL, a.send(new byte[] {1}, 0, 1, new int[UnixSocket.MAX_SEND_FDS + 1]));
            C.close(efd);
        }
    }

    static long openFds() throws java.io.IOException {
        try (var s = Files.list(Path.of("/proc/self/fd"))) { return s.count(); }
    }

    @Test
    void listenConnectAcceptAndEof(@TempDir Path dir) throws Exception {
        Path sp = dir.resolve("s.sock");
        try (UnixSocket l = UnixSocket.listen(sp, 1)) {
            assertTrue(Files.exists(sp));
            try (UnixSocket c = UnixSocket.connect(sp); UnixSocket s = l.accept()) {
                int efd = FrontEnd.eventfd();
                assertEquals(3, c.send(new byte[] {1, 2, 3}, 0, 3, efd));
                byte[] buf = new byte[3];
                java.util.List<Integer> got = new java.util.ArrayList<>();
                assertEquals(3, s.recvFully(buf, 0, 3, got));
                assertEquals(1, got.size());
                C.close(got.get(0));
                C.close(efd);
                c.close();
                assertEquals(0, s.recvFully(buf, 0, 3, null), "EOF after the peer closes");
            }
        }
        assertThrows(io.vblk.block.BlockException.class, () -> UnixSocket.connect(dir.resolve("missing.sock")));
    }
}
