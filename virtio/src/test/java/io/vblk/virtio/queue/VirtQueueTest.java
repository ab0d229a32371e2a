package io.vblk.virtio.queue;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.memory.GuestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static io.vblk.virtio.VirtioSpec.*;
import static io.vblk.virtio.driver.GuestQueue.putDesc;
import static org.junit.jupiter.api.Assertions.*;

/** The split ring's MUST rules, one test per rule, on raw rings in real guest memory. */
class VirtQueueTest {
    static final int N = 16;
    static final long DESC = 0x1000, AVAIL = 0x2000, USED = 0x3000, BUF = 0x10000, MEMSZ = 1 << 20;
    GuestMemory mem;
    VirtQueue vq;
    DescriptorChain c = new DescriptorChain();
    long desc;
    int availIdx;
    int irqs;

    @BeforeEach
    void setUp() throws Exception {
        mem = GuestMemory.anonymous(MEMSZ);
        desc = mem.translate(DESC, 16 * N);
        vq = new VirtQueue(0, N);
        vq.setMemory(mem);
        vq.setAddresses(DESC, AVAIL, USED);
        vq.setFeatures(bit(F_INDIRECT_DESC) | bit(F_VERSION_1));
        vq.setNotifier(() -> irqs++);
        assertNull(vq.activate());
    }

    @AfterEach
    void tearDown() {
        mem.close();
    }

    void offer(int head) {
        long a = mem.translate(AVAIL, 6 + 2 * N);
        NativeMemory.putShortLE(a + 4 + 2L * (availIdx % N), (short) head);
        availIdx++;
        NativeMemory.putShortLE(a + 2, (short) availIdx);
    }

    void d(int i, long addr, int len, int flags, int next) {
        putDesc(desc, i, addr, len, flags, next);
    }

    ChainError popError() {
        assertEquals(VirtQueue.POP_CHAIN, vq.pop(c));
        return c.error();
    }

    @Test
    void goodChainTranslatesBuffers() {
        d(0, BUF, 16, VIRTQ_DESC_F_NEXT, 5);
        d(5, BUF + 100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
        d(2, BUF + 1000, 1, VIRTQ_DESC_F_WRITE, 0);
        offer(0);
        assertNull(popError());
        assertEquals(0, c.head());
        assertEquals(16, c.readable().size());
        assertEquals(513, c.writable().size());
        assertEquals(mem.translate(BUF + 100, 1), c.writable().address(0));
        assertEquals(VirtQueue.POP_EMPTY, vq.pop(c));
    }

    @Test
    void nextOutsideTable() {
        d(0, BUF, 16, VIRTQ_DESC_F_NEXT, N);
        offer(0);
        assertEquals(ChainError.NEXT_OUT_OF_RANGE, popError());
    }

    @Test
    void loopDetectedByCount() {
        d(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
        d(1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
        offer(0);
        assertEquals(ChainError.LOOP, popError());
    }

    @Test
    void totalLengthOverflow() {
        d(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
        d(1, 0, -1, 0, 0); // 0xffffffff: 16 + 2^32-1 overflows 32 bits
        offer(0);
        assertEquals(ChainError.LENGTH_OVERFLOW, popError());
    }

    @Test
    void readableAfterWritable() {
        d(0, BUF, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        d(1, BUF, 16, 0, 0);
        offer(0);
        assertEquals(ChainError.READABLE_AFTER_WRITABLE, popError());
    }

    @Test
    void addressOutsideGuestMemory() {
        d(0, MEMSZ - 8, 16, 0, 0);
        offer(0);
        assertEquals(ChainError.ADDRESS_OUT_OF_RANGE, popError());
        d(0, -4096L, 16, 0, 0);
        offer(0);
        assertEquals(ChainError.ADDRESS_OUT_OF_RANGE, popError());
    }

    @Test
    void bufferAcrossRegionsBecomesTwoSlices() throws Exception {
        mem.addAnonymous(MEMSZ, 1 << 16);
        d(0, MEMSZ - 100, 200, 0, 0);
        offer(0);
        assertNull(popError());
        assertEquals(2, c.readable().count());
        assertEquals(100, c.readable().length(0));
        assertEquals(100, c.readable().length(1));
        assertEquals(mem.translate(MEMSZ, 1), c.readable().address(1));
    }

    @Test
    void indirectRules() {
        long t = mem.translate(BUF, 16 * 4);
        putDesc(t, 0, BUF + 0x1000, 16, VIRTQ_DESC_F_NEXT, 1);
        putDesc(t, 1, BUF + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
        d(0, BUF, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0); // WRITE on the pointer is ignored
        offer(0);
        assertNull(popError());
        assertTrue(c.usedIndirect());
        assertEquals(16, c.readable().size());
        assertEquals(1, c.writable().size());

        d(0, BUF, 24, VIRTQ_DESC_F_INDIRECT, 0);
        offer(0);
        assertEquals(ChainError.INDIRECT_BAD_LENGTH, popError());
        d(0, BUF, 0, VIRTQ_DESC_F_INDIRECT, 0);
        offer(0);
        assertEquals(ChainError.INDIRECT_BAD_LENGTH, popError());
        d(0, BUF, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
        offer(0);
        assertEquals(ChainError.INDIRECT_WITH_NEXT, popError());
        d(0, MEMSZ - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(0);
        assertEquals(ChainError.INDIRECT_OUT_OF_RANGE, popError());
        putDesc(t, 1, BUF, 32, VIRTQ_DESC_F_INDIRECT, 0);
        d(0, BUF, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(0);
        assertEquals(ChainError.NESTED_INDIRECT, popError());
        putDesc(t, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 7);
        offer(0);
        assertEquals(ChainError.NEXT_OUT_OF_RANGE, popError(), "next is checked against the indirect table's size");
        putDesc(t, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
        offer(0);
        assertEquals(ChainError.LOOP, popError());
    }

    @Test
    void indirectAtTheEndOfAChainIsAccepted() {
        long t = mem.translate(BUF, 32);
        putDesc(t, 0, BUF + 0x1000, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        putDesc(t, 1, BUF + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
        d(3, BUF + 0x3000, 16, VIRTQ_DESC_F_NEXT, 4);
        d(4, BUF, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(3);
        assertNull(popError());
        assertEquals(16, c.readable().size());
        assertEquals(513, c.writable().size());
    }

    @Test
    void indirectNeedsTheFeature() {
        vq.setFeatures(bit(F_VERSION_1));
        d(0, BUF, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(0);
        assertEquals(ChainError.INDIRECT_NOT_NEGOTIATED, popError());
    }

    @Test
    void availIdxRunningAheadBreaksTheRing() {
        long a = mem.translate(AVAIL, 6 + 2 * N);
        NativeMemory.putShortLE(a + 2, (short) (N + 1));
        assertEquals(-1, vq.pending());
        assertEquals(VirtQueue.POP_BROKEN, vq.pop(c));
        assertNotNull(vq.brokenReason());
        assertFalse(vq.isActive());
    }

    @Test
    void headOutOfRangeBreaksTheRing() {
        offer(N + 3);
        assertEquals(VirtQueue.POP_BROKEN, vq.pop(c));
        assertTrue(vq.brokenReason().contains("head"));
    }

    @Test
    void ringOutsideMemoryOrMisalignedIsRefused() {
        VirtQueue q = new VirtQueue(1, N);
        q.setMemory(mem);
        q.setAddresses(MEMSZ - 16, AVAIL, USED);
        assertNotNull(q.activate());
        q.setAddresses(DESC + 8, AVAIL, USED);
        assertNotNull(q.activate());
        q.setAddresses(DESC, AVAIL, USED + 2);
        assertNotNull(q.activate());
        assertThrows(IllegalArgumentException.class, () -> q.setSize(12));
        assertThrows(IllegalArgumentException.class, () -> new VirtQueue(0, 65536));
    }

    @Test
    void usedRingAndInterruptsWithoutEventIdx() {
        d(0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
        offer(0);
        assertNull(popError());
        vq.push(0, 1);
        long u = mem.translate(USED, 6 + 8 * N);
        assertEquals(1, NativeMemory.getShortLE(u + 2));
        assertEquals(0, NativeMemory.getIntLE(u + 4));
        assertEquals(1, NativeMemory.getIntLE(u + 8));
        assertTrue(vq.notifyIfNeeded());
        assertEquals(1, irqs);
        assertFalse(vq.notifyIfNeeded(), "nothing new pushed");
        NativeMemory.putShortLE(mem.translate(AVAIL, 2), (short) VIRTQ_AVAIL_F_NO_INTERRUPT);
        offer(0);
        vq.pop(c);
        vq.push(0, 1);
        assertFalse(vq.notifyIfNeeded(), "NO_INTERRUPT");
        // NO_NOTIFY while processing, cleared by enable
        vq.disableNotification();
        assertEquals(VIRTQ_USED_F_NO_NOTIFY, NativeMemory.getShortLE(u));
        assertTrue(vq.enableNotification());
        assertEquals(0, NativeMemory.getShortLE(u));
        offer(0);
        vq.disableNotification();
        assertFalse(vq.enableNotification(), "a buffer arrived: recheck says not empty");
    }

    @Test
    void eventIdxBothDirections() {
        vq.setFeatures(bit(F_EVENT_IDX) | bit(F_VERSION_1));
        assertNull(vq.activate());
        long a = mem.translate(AVAIL, 6 + 2 * N);
        long u = mem.translate(USED, 6 + 8 * N);
        d(0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
        for (int i = 0; i < 4; i++) offer(0);
        for (int i = 0; i < 4; i++) assertEquals(VirtQueue.POP_CHAIN, vq.pop(c));
        assertEquals(4, NativeMemory.getShortLE(u + 4 + 8L * N), "avail_event = last_avail_idx");
        NativeMemory.putShortLE(a + 4 + 2L * N, (short) 2); // used_event: interrupt when used passes 2
        vq.push(0, 1);
        assertTrue(vq.notifyIfNeeded(), "first decision always signals");
        vq.push(0, 1);
        assertFalse(vq.notifyIfNeeded(), "used 2 has not passed used_event 2");
        vq.push(0, 1);
        assertTrue(vq.notifyIfNeeded(), "used 3 passes used_event 2");
        vq.push(0, 1);
        assertFalse(vq.notifyIfNeeded());
        assertEquals(2, irqs);
        // device side: enable writes avail_event = current avail.idx; recheck sees new buffers
        vq.disableNotification();
        offer(0);
        assertFalse(vq.enableNotification());
        assertEquals(5, NativeMemory.getShortLE(u + 4 + 8L * N));
    }

    @Test
    void lastAvailIdxRoundTripsAndUsedIdxComesFromTheRing() {
        d(0, BUF, 1, VIRTQ_DESC_F_WRITE, 0);
        offer(0);
        offer(0);
        vq.pop(c);
        vq.push(0, 1);
        assertEquals(1, vq.lastAvailIdx());
        vq.deactivate();
        VirtQueue q2 = new VirtQueue(0, N);
        q2.setMemory(mem);
        q2.setAddresses(DESC, AVAIL, USED);
        q2.setLastAvailIdx(vq.lastAvailIdx());
        assertNull(q2.activate());
        assertEquals(1, q2.usedIdx());
        assertEquals(VirtQueue.POP_CHAIN, q2.pop(c));
        assertEquals(VirtQueue.POP_EMPTY, q2.pop(c));
    }

    @Test
    void needEventMatchesTheSpecFormula() {
        assertTrue(needEvent(0, 1, 0));
        assertFalse(needEvent(1, 1, 0));
        assertTrue(needEvent(65535, 0, 65534));
        assertFalse(needEvent(5, 3, 1));
    }
}
