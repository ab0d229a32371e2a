package io.vblk.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.BlockException;
import java.nio.ByteBuffer;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Header parsing as hostile data, serialization round trips, and the entry/refcount helpers. */
class Qcow2HeaderTest {

    static byte[] image(int version, int clusterBits) throws BlockException {
        Qcow2Header h = Qcow2Header.newHeader(version, clusterBits, 1L << 30, 4);
        h.l1Size = (int) Qcow2Header.l1SizeFor(h.size, clusterBits);
        h.l1TableOffset = 3L << clusterBits;
        h.refcountTableOffset = 1L << clusterBits;
        h.refcountTableClusters = 1;
        byte[] out = new byte[1 << clusterBits];
        byte[] s = h.serialize();
        System.arraycopy(s, 0, out, 0, s.length);
        return out;
    }

    static String err(byte[] b) {
        BlockException e = assertThrows(BlockException.class, () -> Qcow2Header.parse(b));
        assertFalse(e.getMessage().contains("\n"), "one line");
        return e.getMessage();
    }

    @Test
    void roundTripV2AndV3() throws Exception {
        for (int v : new int[] {2, 3}) {
            byte[] b = image(v, 16);
            Qcow2Header h = Qcow2Header.parse(b);
            assertEquals(v, h.version);
            assertEquals(16, h.clusterBits);
            assertEquals(1L << 30, h.size);
            assertEquals(v == 3 ? 112 : 72, h.headerLength);
            byte[] again = h.serialize();
            assertArrayEquals(java.util.Arrays.copyOf(b, again.length), again);
        }
    }

    @Test
    void hostileFieldsAreRefusedWithOneLine() throws Exception {
        byte[] b = image(3, 16);
        b[0] = 0;
        assertTrue(err(b).contains("magic"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(4, 4);
        assertTrue(err(b).contains("version"));
        for (int cb : new int[] {8, 22, -1}) {
            b = image(3, 16);
            ByteBuffer.wrap(b).putInt(20, cb);
            assertTrue(err(b).contains("cluster size"), err(b));
        }
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(100, 96);
        assertTrue(err(b).contains("too short"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(100, 1 << 17);
        assertTrue(err(b).contains("exceeds cluster size"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(36, Integer.MAX_VALUE);
        assertTrue(err(b).contains("L1 table too large"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(36, 1);
        assertTrue(err(b).contains("L1 table is too small"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putLong(40, (3L << 16) + 512);
        assertTrue(err(b).contains("not cluster aligned"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putLong(48, 1L << 60);
        assertTrue(err(b).contains("offset invalid"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(96, 7);
        assertTrue(err(b).contains("64 bits"));
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(56, 1 << 20);
        assertTrue(err(b).contains("Reference count table size"));
        // an extension whose length overruns cluster 0
        b = image(3, 16);
        ByteBuffer.wrap(b).putInt(112, 0x12345678).putInt(116, 1 << 16);
        assertTrue(err(b).contains("overruns cluster 0"), err(b));
        // unknown incompatible bit: refused by name from the image's feature table, else by number
        b = image(3, 16);
        ByteBuffer.wrap(b).putLong(72, 1L << 9);
        assertTrue(err(b).contains("Unknown incompatible feature bit 9"), err(b));
    }

    @Test
    void tablesOutsideTheFileAreRefused() throws Exception {
        Qcow2Header h = Qcow2Header.parse(image(3, 16));
        BlockException e = assertThrows(BlockException.class, () -> h.checkInsideFile(3L << 16));
        assertTrue(e.getMessage().contains("L1 table"), e.getMessage());
        assertDoesNotThrow(() -> h.checkInsideFile(4L << 16));
    }

    @Test
    void unknownExtensionsAndTrailingHeaderBytesAreKeptByteForByte() throws Exception {
        Qcow2Header h = Qcow2Header.parse(image(3, 16));
        h.otherExtensions.add(new Qcow2Header.Extension(0x0badcafe, new byte[] {1, 2, 3, 4, 5}));
        h.headerLength = 120;
        h.tail = new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 9, 8, 7, 6, 5, 4, 3, 2};
        h.backingFile = "base.img";
        h.backingFormat = "raw";
        byte[] b = java.util.Arrays.copyOf(h.serialize(), 1 << 16);
        Qcow2Header p = Qcow2Header.parse(b);
        assertEquals(1, p.otherExtensions.size());
        assertArrayEquals(new byte[] {1, 2, 3, 4, 5}, p.otherExtensions.get(0).data());
        assertArrayEquals(h.tail, p.tail);
        assertEquals("base.img", p.backingFile);
        assertEquals("raw", p.backingFormat);
        assertTrue(p.hasFeatureTable);
        assertEquals("lazy refcounts", p.featureNames(Qcow2Constants.QCOW2_FEAT_TYPE_COMPATIBLE, 1));
        assertEquals("corrupt bit", p.featureNames(Qcow2Constants.QCOW2_FEAT_TYPE_INCOMPATIBLE, 2));
    }

    @Test
    void refcountGetSetForEveryWidth() {
        try (io.vblk.block.NativeBuffer b = io.vblk.block.NativeBuffer.allocate(4096, 4096)) {
            for (int order = 0; order <= 6; order++) {
                b.fill(0, 4096, (byte) 0);
                long n = 4096L * 8 >> order;
                long max = Qcow2Layout.maxRefcount(order);
                Random r = new Random(order);
                long[] want = new long[(int) n];
                for (int i = 0; i < n; i++) {
                    want[i] = order == 6 ? r.nextLong() & Long.MAX_VALUE : r.nextLong() & max;
                    Qcow2Layout.setRefcount(b.address(), order, i, want[i]);
                }
                for (int i = 0; i < n; i++) assertEquals(want[i], Qcow2Layout.getRefcount(b.address(), order, i), "order " + order + " index " + i);
            }
            // sub-byte widths are LSB first
            b.fill(0, 4096, (byte) 0);
            Qcow2Layout.setRefcount(b.address(), 0, 0, 1);
            Qcow2Layout.setRefcount(b.address(), 0, 3, 1);
            assertEquals(0x09, io.vblk.block.NativeMemory.getByte(b.address()));
        }
    }

    @Test
    void compressedDescriptorRoundTrip() {
        for (int cb = 9; cb <= 21; cb++) {
            long off = 0x123456789L & ((1L << Qcow2Layout.csizeShift(cb)) - 1);
            int csize = Math.min(1000, (1 << cb) - 1);
            long d = Qcow2Layout.compressedDescriptor(off, csize, cb);
            assertEquals(off, Qcow2Layout.compressedOffset(d, cb));
            assertTrue(Qcow2Layout.compressedSize(d, cb) >= csize);
            assertTrue(Qcow2Layout.compressedSize(d, cb) < csize + 512);
        }
        assertEquals(Qcow2Layout.ClusterType.ZERO_PLAIN, Qcow2Layout.clusterType(1, 3));
        assertEquals(Qcow2Layout.ClusterType.UNALLOCATED, Qcow2Layout.clusterType(1, 2));
        assertEquals(Qcow2Layout.ClusterType.ZERO_ALLOC, Qcow2Layout.clusterType(0x10001, 3));
        assertEquals(Qcow2Layout.ClusterType.COMPRESSED, Qcow2Layout.clusterType(Qcow2Constants.QCOW_OFLAG_COMPRESSED | 5, 3));
    }
}
