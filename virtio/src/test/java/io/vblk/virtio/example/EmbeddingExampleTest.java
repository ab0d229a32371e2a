package io.vblk.virtio.example;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.NativeMemory;
import io.vblk.virtio.blk.VirtioBlkConfig;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.memory.GuestMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The README's embedding example, compiled and run: a virtio-blk device on guest memory the
 * embedder already owns (a MemorySegment), wired to its transport by method calls. The lines
 * between the BEGIN/END markers are what the README shows (at most 20); the rest of the test plays
 * the guest with {@link GuestDriver} to prove the device works as wired.
 */
class EmbeddingExampleTest {
    @Test
    void deviceOnCallerProvidedGuestMemory() throws Exception {
        AtomicInteger irqs = new AtomicInteger();
        Runnable injectIrq = irqs::incrementAndGet;
        // BEGIN README EXAMPLE
        try (Arena arena = Arena.ofShared(); AioContext io = AioContext.start("vblk-io")) {
            MemorySegment ram = arena.allocate(64 << 20, 4096);         // the VMM's guest RAM
            GuestMemory mem = new GuestMemory();
            mem.addSegment(0, ram);                                      // GPA 0 .. 64M -> ram
            BlockNode disk = BlockNode.open(BlockOptions.parse("driver=memory,size=64M"));
            VirtioBlkDevice blk = new VirtioBlkDevice(disk, new VirtioBlkConfig().serial("disk0"),
                    new AioContext[] {io});                              // queue 0 runs on io
            blk.setMemory(mem);
            blk.setNotifier(0, injectIrq::run);                          // used-buffer interrupt
            // The VMM's virtio-mmio/pci transport forwards the guest's register accesses:
            //   DeviceFeatures -> blk.deviceFeatures()   DriverFeatures -> blk.setDriverFeatures(f)
            //   config space   -> blk.readConfig(o, n)   QueueNum/Desc/Avail/Used -> blk.queue(0).setSize/setAddresses
            //   Status         -> blk.setStatus(s)       QueueNotify -> blk.kick(0)
            playGuest(blk, mem);                                         // here: the in-process guest
            io.run(disk::close);
        }
        // END README EXAMPLE
        assertTrue(irqs.get() > 0, "the guest got interrupts");
        List<String> lines = Files.readAllLines(Path.of("src/test/java/io/vblk/virtio/example/EmbeddingExampleTest.java"));
        int begin = -1, end = -1;
        for (int i = 0; i < lines.size(); i++) {
            // the first occurrences: the markers themselves, not these two lines that search for them
            if (begin < 0 && lines.get(i).contains("// BEGIN README EXAMPLE")) begin = i;
            if (end < 0 && lines.get(i).contains("// END README EXAMPLE")) end = i;
        }
        assertTrue(begin >= 0 && end > begin + 1, "markers found");
        assertTrue(end - begin - 1 <= 20, "the README example is at most 20 lines: " + (end - begin - 1));
        // the README shows exactly these lines (indentation removed)
        List<String> snippet = lines.subList(begin + 1, end);
        int indent = snippet.stream().filter(l -> !l.isBlank())
                .mapToInt(l -> l.length() - l.stripLeading().length()).min().orElse(0);
        String expected = String.join("\n", snippet.stream().map(l -> l.isBlank() ? "" : l.substring(indent)).toList());
        String readme = Files.readString(Path.of("../README.md"));
        assertTrue(readme.contains("```java\n" + expected + "\n```"), "README.md must show the example verbatim");
    }

    /** What a guest kernel would do: initialise, write, read back, get the serial. */
    private static void playGuest(VirtioBlkDevice blk, GuestMemory mem) {
        GuestDriver guest = new GuestDriver(blk, mem, 0, 32 << 20).wireInterrupts(false); // keep the VMM's notifier
        guest.initialize(256);
        GuestQueue q = guest.queue(0);
        long buf = guest.alloc(4096, 4096);
        NativeMemory.fill(mem.translate(buf, 4096), 4096, (byte) 0x42);
        q.submit(VIRTIO_BLK_T_OUT, 100, buf, 4096, Layout.DIRECT);
        q.kick();
        assertTrue(q.waitUsed(5000));
        assertEquals(VIRTIO_BLK_S_OK, q.status(q.lastHead()));
        NativeMemory.fill(mem.translate(buf, 4096), 4096, (byte) 0);
        q.submit(VIRTIO_BLK_T_IN, 100, buf, 4096, Layout.INDIRECT);
        q.kick();
        assertTrue(q.waitUsed(5000));
        assertEquals(VIRTIO_BLK_S_OK, q.status(q.lastHead()));
        assertEquals(0x42, NativeMemory.getByte(mem.translate(buf + 4095, 1)));
        q.submit(VIRTIO_BLK_T_GET_ID, 0, buf, 20, Layout.DIRECT);
        q.kick();
        assertTrue(q.waitUsed(5000));
        assertEquals('d', NativeMemory.getByte(mem.translate(buf, 1)));
        blk.reset();
    }
}
