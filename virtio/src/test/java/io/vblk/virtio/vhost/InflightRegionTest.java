package io.vblk.virtio.vhost;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.NativeMemory;
import org.junit.jupiter.api.Test;

/** The inflight region's split-ring bookkeeping and the recovery a restarted backend performs. */
class InflightRegionTest {
    @Test
    void layoutAndFreshRegion() throws Exception {
        try (InflightRegion r = InflightRegion.create(2, 128)) {
            assertEquals(2 * ((16 + 16 * 128 + 63) / 64 * 64), r.mmapSize());
            assertEquals(1, NativeMemory.getShortLE(r.queueBase(1) + 8), "version 1");
            assertEquals(128, NativeMemory.getShortLE(r.queueBase(1) + 10), "desc_num");
            InflightRegion.Queue.Recovery rec = r.queue(0, 128).recover(0);
            assertEquals(0, rec.heads().length);
            assertEquals(0, rec.lastAvailIdx());
            assertNull(r.queue(2, 128), "queue index beyond the region");
            assertNull(r.queue(0, 256), "ring larger than the region's queue size");
        }
    }

    @Test
    void recoveryResubmitsInSubmissionOrderAndRepairsTheLastBatch() throws Exception {
        try (InflightRegion r = InflightRegion.create(1, 16)) {
            InflightRegion.Queue q = r.queue(0, 16);
            q.recover(0);
            // pop heads 5, 2, 9, 7 in that order
            for (int h : new int[] {5, 2, 9, 7}) q.begin(h);
            // head 2 completes fully: used idx 1
            q.prePut(2);
            q.postPut(2, 1);
            // head 9 is published to the used ring (used idx 2) but the backend dies before post_put
            q.prePut(9);
            // a new backend process maps the same memory (same fd) and recovers against the ring's used idx 2
            int fd = io.vblk.aio.Native.LIBC.fcntl(r.fd(), 1030 /* F_DUPFD_CLOEXEC */, 0);
            try (InflightRegion again = InflightRegion.attach(fd, r.mmapSize(), 0, 1, 16)) {
                InflightRegion.Queue.Recovery rec = again.queue(0, 16).recover(2);
                assertArrayEquals(new int[] {5, 7}, rec.heads(), "9 was repaired as completed; 5 then 7 in pop order");
                assertEquals(4, rec.lastAvailIdx(), "used 2 + 2 in flight");
            }
        }
    }

    @Test
    void badSizesAreRefused() {
        assertThrows(VhostUserProtocolException.class, () -> InflightRegion.create(0, 128));
        assertThrows(VhostUserProtocolException.class, () -> InflightRegion.create(1, 65536));
        int fd = io.vblk.aio.Native.LIBC.memfd_create("x", VhostUser.MFD_CLOEXEC);
        assertThrows(VhostUserProtocolException.class, () -> InflightRegion.attach(fd, 64, 0, 1, 128), "region too small for the queues");
    }
}
