package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** bdrv_check_byte_request and the other up-front refusals of the request path. */
class BlockIoChecksTest extends BlockTestSupport {
    @Test
    void negativeAndOverflowingRangesAreEio() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        NativeBuffer b = buffer(4096);
        IoVector v = IoVector.of(b.address(), 4096);
        assertEquals(-Errno.EIO, run(() -> n.preadv(-1, 4096, v, 0)));
        assertEquals(-Errno.EIO, run(() -> n.pwritev(-512, 4096, v, 0)));
        assertEquals(-Errno.EIO, run(() -> n.pwriteZeroes(Long.MAX_VALUE - 100, 4096, 0)));
        assertEquals(-Errno.EIO, run(() -> n.pdiscard(-4096, 4096)));
        // larger than BDRV_REQUEST_MAX_BYTES
        assertEquals(-Errno.EIO, run(() -> n.preadv(0, 1L << 31, v, 0)));
    }

    @Test
    void shortVectorIsEinval() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        NativeBuffer b = buffer(4096);
        IoVector v = IoVector.of(b.address(), 4096);
        assertEquals(-Errno.EINVAL, run(() -> n.preadv(0, 8192, v, 0)));
        assertEquals(-Errno.EINVAL, run(() -> n.pwritev(0, 4096, v, 512, 0)));
    }

    @Test
    void readOnlyNodeRefusesWritesWithEperm() throws Exception {
        BlockNode n = open("driver=memory,size=1M,read-only=on");
        NativeBuffer b = buffer(4096);
        IoVector v = IoVector.of(b.address(), 4096);
        assertEquals(-Errno.EPERM, run(() -> n.pwritev(0, 4096, v, 0)));
        assertEquals(-Errno.EPERM, run(() -> n.pwriteZeroes(0, 4096, 0)));
        assertEquals(-Errno.EPERM, run(() -> n.pdiscard(0, 4096)));
        assertEquals(0, run(() -> n.preadv(0, 4096, v, 0)));
        assertEquals(0, run(n::flush));
    }

    @Test
    void closedNodeHasNoMedium() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        NativeBuffer b = buffer(4096);
        IoVector v = IoVector.of(b.address(), 4096);
        run(n::close);
        assertEquals(-Errno.ENOMEDIUM, run(() -> n.preadv(0, 4096, v, 0)));
        assertEquals(-Errno.ENOMEDIUM, run(() -> n.pwritev(0, 4096, v, 0)));
        assertEquals(-Errno.ENOMEDIUM, run(() -> n.pdiscard(0, 4096)));
    }

    @Test
    void writesUpdateGenerationHighestOffsetLengthAndBitmaps() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        DirtyBitmap bm = new DirtyBitmap("b", 65536);
        n.addDirtyBitmap(bm);
        long gen = n.writeGen();
        assertEquals(0, write(n, 200_000, pattern(4096, 1), 0));
        assertEquals(gen + 1, n.writeGen());
        assertEquals(204_096, n.wrHighestOffset());
        assertEquals(true, bm.isDirty(200_000));
        assertEquals(false, bm.isDirty(0));
        assertEquals(1, bm.dirtyCount());   // 200000..204095 lies in granule 3 only
        assertEquals(0, write(n, 65536 * 5 - 1, new byte[2], 0));
        assertEquals(3, bm.dirtyCount());   // crosses granules 4 and 5
    }

    @Test
    void readOnlyBitmapRefusesWritesWithEperm() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        DirtyBitmap bm = new DirtyBitmap("b", 65536);
        n.addDirtyBitmap(bm);
        bm.setReadOnly(true);
        assertEquals(-Errno.EPERM, write(n, 0, pattern(4096, 1), 0));
        assertEquals(-Errno.EPERM, run(() -> n.pwriteZeroes(0, 4096, 0)));
        bm.setReadOnly(false);
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
    }

    @Test
    void beforeWriteNotifierCanVeto() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        long[] seen = new long[2];
        BlockNode.WriteNotifier veto = (node, off, bytes, flags) -> {
            seen[0] = off;
            seen[1] = bytes;
            return off >= 65536 ? -Errno.ENOSPC : 0;
        };
        n.addBeforeWriteNotifier(veto);
        assertEquals(0, write(n, 4096, pattern(4096, 1), 0));
        assertEquals(-Errno.ENOSPC, write(n, 65536, pattern(4096, 2), 0));
        assertEquals(65536, seen[0]);
        assertEquals(4096, seen[1]);
        assertEquals(0, memory(n).snapshot(65536, 1)[0]);   // vetoed: nothing written
        n.removeBeforeWriteNotifier(veto);
        assertEquals(0, write(n, 65536, pattern(4096, 2), 0));
    }
}
