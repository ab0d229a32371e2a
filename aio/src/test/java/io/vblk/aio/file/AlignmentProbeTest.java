package io.vblk.aio.file;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import org.junit.jupiter.api.Test;

/** The decision logic of raw_probe_alignment with scripted kernels (the real kernel is covered by FileDriverTest and LoopDeviceTest). */
class AlignmentProbeTest {
    @Test
    void nothingWorksIsOneClearError() {
        BlockException e = assertThrows(BlockException.class, () -> AlignmentProbe.probe(0, "/x.img", (a, l) -> false));
        assertEquals(Errno.EINVAL, e.errno());
        assertTrue(e.getMessage().contains("Could not find working O_DIRECT alignment for '/x.img'")
                && e.getMessage().contains("cache.direct=off"), e.getMessage());
    }

    @Test
    void firstWorkingSizeWinsAndOneMeansUnknown() throws Exception {
        // a kernel that wants 2048-byte lengths and 1024-byte aligned buffers
        AlignmentProbe.Result r = AlignmentProbe.probe(0, "f", (a, l) -> l % 2048 == 0 && a % 1024 == 0);
        assertEquals(2048, r.request());
        assertEquals(1024, r.buffer());
        // a kernel that accepts anything: "1" is unknown, so the safe maximum for requests, and the
        // request alignment for buffers
        r = AlignmentProbe.probe(0, "f", (a, l) -> true);
        assertEquals(Math.max(4096, AlignmentProbe.pageSize()), r.request());
        assertEquals(r.request(), r.buffer());
        // a block device's sector size is taken as is
        r = AlignmentProbe.probe(4096, "dev", (a, l) -> l % 4096 == 0 && a % 512 == 0);
        assertEquals(4096, r.request());
        assertEquals(512, r.buffer());
    }
}
