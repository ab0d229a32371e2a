package io.vblk.nativetests.vhost;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.cli.ServeCommand;
import io.vblk.virtio.vhost.UnixSocket;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code vblk serve} argument handling and socket-path rules (the guest runs are in VhostUserBlkGuestTest). */
class ServeCommandTest {
    record Run(int rc, String out, String err) {}

    static Run serve(String... args) {
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        int rc = ServeCommand.run(args, new PrintStream(o, true), new PrintStream(e, true));
        return new Run(rc, o.toString(), e.toString());
    }

    @Test
    void usageAndBadArguments(@TempDir Path dir) throws Exception {
        Run h = serve("--help");
        assertEquals(0, h.rc());
        assertTrue(h.out().contains("--socket PATH"));
        assertEquals(1, serve(dir.resolve("x.raw").toString()).rc(), "--socket is required");
        assertTrue(serve(dir.resolve("x.raw").toString()).err().contains("--socket is required"));
        assertEquals(1, serve("--socket", dir.resolve("s").toString()).rc(), "FILE is required");
        assertEquals(1, serve("--socket", dir.resolve("s").toString(), "--num-queues", "0", "f").rc());
        assertEquals(1, serve("--socket", dir.resolve("s").toString(), "--logical-block-size", "1000", "f").rc());
        assertEquals(1, serve("--socket", dir.resolve("s").toString(), "--bogus", "f").rc());
        Run poll = serve("--socket", dir.resolve("s").toString(), "--poll-max-ns", "-1", "f");
        assertEquals(1, poll.rc());
        assertTrue(poll.err().contains("--poll-max-ns must not be negative"), poll.err());
        assertEquals(1, serve("--socket", dir.resolve("s").toString(), "--poll-max-ns=lots", "f").rc());
        assertTrue(h.out().contains("--poll-max-ns NS"));
        assertTrue(h.out().contains("--irq-coalesce-ns NS"));
        var coalesce = serve("--socket", dir.resolve("s").toString(), "--irq-coalesce-ns=-5", "f");
        assertEquals(1, coalesce.rc());
        assertTrue(coalesce.err().contains("--irq-coalesce-ns must not be negative"), coalesce.err());
        var count = serve("--socket", dir.resolve("s").toString(), "--irq-coalesce-ns", "1000", "--irq-coalesce-max", "0", "f");
        assertEquals(1, count.rc());
        assertTrue(count.err().contains("--irq-coalesce-max must be at least 1"), count.err());
        assertTrue(h.out().contains("--kick-hold-ns NS"));
        var hold = serve("--socket", dir.resolve("s").toString(), "--kick-hold-ns", "-1", "f");
        assertEquals(1, hold.rc());
        assertTrue(hold.err().contains("--kick-hold-ns must not be negative"), hold.err());
        assertTrue(h.out().contains("--kick-hold-depth N"));
        var depth = serve("--socket", dir.resolve("s").toString(), "--kick-hold-ns", "1000", "--kick-hold-depth", "0", "f");
        assertEquals(1, depth.rc());
        assertTrue(depth.err().contains("--kick-hold-depth must be at least 1"), depth.err());
        Run missing = serve("--socket", dir.resolve("s").toString(), dir.resolve("missing.raw").toString());
        assertEquals(1, missing.rc());
        assertTrue(missing.err().contains("No such file"), missing.err());
        assertEquals(1, serve("--socket", dir.resolve("s").toString(), "-t", "sometimes", dir.resolve("missing.raw").toString()).rc());
    }

    @Test
    void staleSocketIsReplacedLiveOneIsRefused(@TempDir Path dir) throws Exception {
        Path sp = dir.resolve("v.sock");
        UnixSocket l = UnixSocket.listen(sp, 1);
        Exception e = assertThrows(java.io.IOException.class, () -> invokeRemoveStale(sp));
        assertTrue(e.getMessage().contains("in use"), e.getMessage());
        l.close();   // now stale: the file stays, nobody listens
        assertTrue(Files.exists(sp));
        invokeRemoveStale(sp);
        assertFalse(Files.exists(sp));
        Path regular = dir.resolve("plain");
        Files.writeString(regular, "not a socket");
        assertThrows(java.io.IOException.class, () -> invokeRemoveStale(regular));
        assertTrue(Files.exists(regular), "a regular file is never deleted");
    }

    static void invokeRemoveStale(Path p) throws Exception {
        var m = ServeCommand.class.getDeclaredMethod("removeStaleSocket", Path.class);
        m.setAccessible(true);
        try {
            m.invoke(null, p);
        } catch (java.lang.reflect.InvocationTargetException ite) {
            throw (Exception) ite.getCause();
        }
    }
}
