package io.vblk.virtio.blk;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.testutil.Rig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/** Requests of every type through guest driver -> virtqueue -> device -> memory node. */
class VirtioBlkDeviceTest {

    private static byte[] bytes(Rig r, long gpa, int len) {
        byte[] b = new byte[len];
        NativeMemory.copyToArray(r.host(gpa, len), b, 0, len);
        return b;
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void writeThenReadInEveryLayout(Layout layout) throws Exception {
        try (Rig r = new Rig()) {
            long w = r.buffer(8192, 0);
            for (int i = 0; i < 8192; i++) NativeMemory.putByte(r.host(w, 8192) + i, (byte) (i * 7 + layout.ordinal()));
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 24, w, 8192, layout));
            assertEquals(1, r.lastLen, "a write writes only the status byte");
            long rd = r.buffer(8192, 0x55);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 24, rd, 8192, layout));
            assertEquals(8193, r.lastLen, "a read writes data and status");
            assertArrayEquals(bytes(r, w, 8192), bytes(r, rd, 8192));
        }
    }

    @Test
    void multiSegmentReadAcrossRegions() throws Exception {
        try (Rig r = new Rig()) {
            // a second region right after the first: a buffer crossing the boundary becomes two slices
            r.mem.addAnonymous(Rig.MEM, 1 << 20);
            long w = r.buffer(4096, 0x3c);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 0, w, 4096, Layout.DIRECT));
            long cross = Rig.MEM - 2048;
            int head = r.q.submit(VIRTIO_BLK_T_IN, 0, new long[] {cross}, new int[] {4096}, 1, Layout.DIRECT);
            r.q.forceKick();
            assertTrue(r.q.waitUsed(5000));
            assertEquals(VIRTIO_BLK_S_OK, r.q.status(head));
            for (int i = 0; i < 2048; i++) {
                assertEquals(0x3c, NativeMemory.getByte(r.host(cross, 2048) + i) & 0xff);
                assertEquals(0x3c, NativeMemory.getByte(r.host(Rig.MEM, 2048) + i) & 0xff);
            }
        }
    }

    @Test
    void getIdPadsSerialWithNuls() throws Exception {
        try (Rig r = new Rig("driver=memory,size=1M", new VirtioBlkConfig().serial("disk-42"), -1L)) {
            long b = r.buffer(20, 0x77);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_GET_ID, 0, b, 20, Layout.DIRECT));
            byte[] id = bytes(r, b, 20);
            assertEquals("disk-42", new String(id, 0, 7));
            for (int i = 7; i < 20; i++) assertEquals(0, id[i]);
            assertEquals(21, r.lastLen);
        }
        String twenty = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        try (Rig r = new Rig("driver=memory,size=1M", new VirtioBlkConfig().serial(twenty), -1L)) {
            long b = r.buffer(32, 0x77);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_GET_ID, 0, b, 32, Layout.SPLIT_HEADER));
            assertEquals(twenty.substring(0, 20), new String(bytes(r, b, 20)));
            assertEquals(0x77, bytes(r, b, 21)[20] & 0xff, "nothing past 20 bytes is written");
        }
    }

    @Test
    void flushUnknownTypeAndRangeRules() throws Exception {
        try (Rig r = new Rig()) {
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_FLUSH, 0, 0, 0, Layout.DIRECT));
            long b = r.buffer(4096, 1);
            assertEquals(VIRTIO_BLK_S_UNSUPP, r.run(99, 0, b, 512, Layout.DIRECT));
            assertEquals(VIRTIO_BLK_S_UNSUPP, r.run(VIRTIO_BLK_T_SCSI_CMD, 0, b, 512, Layout.DIRECT));
            long cap = r.dev.capacitySectors();
            assertEquals(16L << 20 >> 9, cap);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, cap - 8, b, 4096, Layout.DIRECT));
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_IN, cap - 7, b, 4096, Layout.DIRECT), "past capacity");
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_OUT, -1L, b, 512, Layout.DIRECT), "huge sector");
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_OUT, 0, b, 100, Layout.DIRECT), "not a multiple of 512");
            assertEquals(1, r.lastLen);
        }
    }

    @Test
    void logicalBlockSizeAlignment() throws Exception {
        VirtioBlkConfig c = new VirtioBlkConfig();
        c.logicalBlockSize = 4096;
        try (Rig r = new Rig("driver=memory,size=1M", c, -1L)) {
            long b = r.buffer(4096, 1);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 8, b, 4096, Layout.DIRECT));
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_OUT, 1, b, 4096, Layout.DIRECT), "sector not aligned to 4k");
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_OUT, 8, b, 512, Layout.DIRECT), "size not a multiple of 4k");
            assertEquals(4096, ByteBuffer.wrap(r.dev.readConfig(CFG_BLK_SIZE, 4)).order(ByteOrder.LITTLE_ENDIAN).getInt());
        }
    }

    @Test
    void readOnlyRejectsWritesWithoutWriting() throws Exception {
        try (Rig r = new Rig("driver=memory,size=1M", new VirtioBlkConfig().readOnly(true), -1L)) {
            assertTrue((r.drv.features() & bit(VIRTIO_BLK_F_RO)) != 0);
            long b = r.buffer(4096, 0xaa);
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_OUT, 0, b, 4096, Layout.DIRECT));
            long seg = segments(r, new long[] {0, 8, 0});
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, Layout.DIRECT));
            long rd = r.buffer(4096, 0x11);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 0, rd, 4096, Layout.DIRECT));
            assertEquals(0, bytes(r, rd, 4096)[100], "the disk was not written");
        }
    }

    /** Writes {sector, num, flags} triples as discard/write-zeroes segments. */
    private static long segments(Rig r, long[] triples) {
        int n = triples.length / 3;
        long g = r.buffer(16 * n, 0);
        long h = r.host(g, 16L * n);
        for (int i = 0; i < n; i++) {
            NativeMemory.putLongLE(h + 16L * i, triples[3 * i]);
            NativeMemory.putIntLE(h + 16L * i + 8, (int) triples[3 * i + 1]);
            NativeMemory.putIntLE(h + 16L * i + 12, (int) triples[3 * i + 2]);
        }
        return g;
    }

    @Test
    void multiSegmentWriteZeroesAndDiscard() throws Exception {
        try (Rig r = new Rig()) {
            long data = r.buffer(64 << 10, 0xee);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 0, data, 64 << 10, Layout.DIRECT));
            long seg = segments(r, new long[] {0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 32, 16, 0});
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 32, Layout.INDIRECT));
            long rd = r.buffer(64 << 10, 0x11);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 0, rd, 64 << 10, Layout.DIRECT));
            byte[] b = bytes(r, rd, 64 << 10);
            for (int i = 0; i < (64 << 10); i++) {
                long s = i >> 9;
                boolean zero = s < 8 || (s >= 32 && s < 48);
                assertEquals(zero ? 0 : (byte) 0xee, b[i], "byte " + i);
            }
            long dseg = segments(r, new long[] {64, 8, 0, 80, 8, 0});
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_DISCARD, 0, dseg, 32, Layout.DIRECT));
            // rules: unmap on discard, unknown flags, too many segments -> UNSUPP; out of range -> IOERR
            assertEquals(VIRTIO_BLK_S_UNSUPP, r.run(VIRTIO_BLK_T_DISCARD, 0, segments(r, new long[] {0, 8, 1}), 16, Layout.DIRECT));
            assertEquals(VIRTIO_BLK_S_UNSUPP, r.run(VIRTIO_BLK_T_WRITE_ZEROES, 0, segments(r, new long[] {0, 8, 2}), 16, Layout.DIRECT));
            long[] many = new long[33 * 3];
            for (int i = 0; i < 33; i++) { many[3 * i] = i * 8L; many[3 * i + 1] = 8; }
            assertEquals(VIRTIO_BLK_S_UNSUPP, r.run(VIRTIO_BLK_T_DISCARD, 0, segments(r, many), 33 * 16, Layout.DIRECT));
            long cap = r.dev.capacitySectors();
            // the second segment is bad: the first must not have been executed
            long bad = segments(r, new long[] {0, 8, 0, cap - 4, 8, 0});
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 0, data, 4096, Layout.DIRECT));
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_WRITE_ZEROES, 0, bad, 32, Layout.DIRECT));
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 0, rd, 4096, Layout.DIRECT));
            assertEquals((byte) 0xee, bytes(r, rd, 1)[0]);
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_DISCARD, 0, r.buffer(8, 0), 8, Layout.DIRECT), "segment shorter than 16 bytes");
        }
    }

    @Test
    void mayUnmapFollowsNodeDiscardOption() throws Exception {
        try (Rig r = new Rig("driver=memory,size=1M,discard=unmap", new VirtioBlkConfig(), -1L)) {
            assertEquals(1, r.dev.readConfig(CFG_WRITE_ZEROES_MAY_UNMAP, 1)[0]);
        }
        try (Rig r = new Rig("driver=memory,size=1M,discard=ignore", new VirtioBlkConfig(), -1L)) {
            assertEquals(0, r.dev.readConfig(CFG_WRITE_ZEROES_MAY_UNMAP, 1)[0]);
        }
    }

    @Test
    void configSpaceByteForByte() throws Exception {
        VirtioBlkConfig c = new VirtioBlkConfig().numQueues(1);
        try (Rig r = new Rig("driver=memory,size=16M", c, -1L)) {
            byte[] cfg = r.dev.readConfig(0, 96);
            ByteBuffer b = ByteBuffer.wrap(cfg).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(96, cfg.length);
            assertEquals(32768, b.getLong(CFG_CAPACITY));
            assertEquals(254, b.getInt(CFG_SEG_MAX));
            assertEquals(512, b.getInt(CFG_BLK_SIZE));
            assertEquals(3, b.get(CFG_PHYSICAL_BLOCK_EXP));
            assertEquals(1, b.getShort(CFG_NUM_QUEUES));
            assertEquals(32, b.getInt(CFG_MAX_DISCARD_SEG));
            assertEquals(1, b.getInt(CFG_DISCARD_SECTOR_ALIGNMENT));
            assertEquals(0, b.get(33), "unused0");
            for (int i = 57; i < 96; i++) assertEquals(0, cfg[i], "byte " + i);
            // writeback is writable with CONFIG_WCE and drives the node's cache flag
            r.dev.writeConfig(CFG_WRITEBACK, new byte[] {0});
            assertFalse(r.node.writeCacheEnabled());
            assertEquals(0, r.dev.readConfig(CFG_WRITEBACK, 1)[0]);
            r.dev.writeConfig(CFG_WRITEBACK, new byte[] {1});
            assertTrue(r.node.writeCacheEnabled());
            r.dev.writeConfig(0, new byte[] {9, 9, 9, 9});
            assertEquals(32768, ByteBuffer.wrap(r.dev.readConfig(0, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong(), "capacity is read-only");
            assertArrayEquals(new byte[4], r.dev.readConfig(200, 4));
        }
    }

    @Test
    void featureNegotiation() throws Exception {
        try (Rig r = new Rig()) {
            long f = r.dev.deviceFeatures();
            for (int b : new int[] {VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_TOPOLOGY,
                    VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES, F_INDIRECT_DESC, F_EVENT_IDX, F_VERSION_1}) {
                assertTrue((f & bit(b)) != 0, "bit " + b);
            }
            assertEquals(0, f & bit(VIRTIO_BLK_F_MQ), "one queue: no MQ");
            assertEquals(0, f & bit(VIRTIO_BLK_F_RO));
            r.dev.reset();
            assertEquals(0, r.dev.status());
            r.dev.setStatus(S_ACKNOWLEDGE | S_DRIVER);
            r.dev.setDriverFeatures(bit(F_VERSION_1) | bit(F_RING_PACKED));
            r.dev.setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
            assertEquals(0, r.dev.status() & S_FEATURES_OK, "an unoffered bit makes FEATURES_OK fail");
            r.dev.setDriverFeatures(bit(VIRTIO_BLK_F_FLUSH));
            r.dev.setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
            assertEquals(0, r.dev.status() & S_FEATURES_OK, "VERSION_1 is required");
            // without FLUSH and CONFIG_WCE the device is writethrough
            r.dev.setDriverFeatures(bit(F_VERSION_1));
            assertFalse(r.node.writeCacheEnabled());
            r.dev.setDriverFeatures(bit(F_VERSION_1) | bit(VIRTIO_BLK_F_FLUSH));
            assertTrue(r.node.writeCacheEnabled());
            // CONFIG_WCE without FLUSH: writeback starts at 0
            r.dev.setDriverFeatures(bit(F_VERSION_1) | bit(VIRTIO_BLK_F_CONFIG_WCE));
            assertFalse(r.node.writeCacheEnabled());
            // a firmware driver (SeaBIOS) negotiates without FLUSH, then the OS's driver with FLUSH and
            // CONFIG_WCE: the configured cache comes back, so the OS's writes are not FUA
            r.dev.setDriverFeatures(bit(F_VERSION_1));
            assertFalse(r.node.writeCacheEnabled());
            r.dev.setDriverFeatures(bit(F_VERSION_1) | bit(VIRTIO_BLK_F_FLUSH) | bit(VIRTIO_BLK_F_CONFIG_WCE));
            assertTrue(r.node.writeCacheEnabled());
            assertEquals(1, r.dev.readConfig(CFG_WRITEBACK, 1)[0], "and the config space says so");
        }
    }

    @Test
    void requestsWorkWithoutEventIdxOrIndirect() throws Exception {
        long wanted = -1L & ~bit(F_EVENT_IDX) & ~bit(F_INDIRECT_DESC);
        try (Rig r = new Rig("driver=memory,size=1M", new VirtioBlkConfig(), wanted)) {
            long b = r.buffer(4096, 0x42);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 0, b, 4096, Layout.SPLIT_HEADER));
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 0, b, 4096, Layout.DIRECT));
        }
    }
}
