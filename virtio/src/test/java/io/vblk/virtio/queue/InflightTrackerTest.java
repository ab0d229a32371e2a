package io.vblk.virtio.queue;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.memory.GuestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static io.vblk.virtio.VirtioSpec.*;
import static io.vblk.virtio.driver.GuestQueue.putDesc;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The {@link InflightTracker} seam of {@link VirtQueue} on raw rings in real guest memory: which
 * hook runs when, what the ring looks like at each hook, and resubmission before the avail ring.
 */
class InflightTrackerTest {
    static final int N = 16;
    static final long DESC = 0x1000, AVAIL = 0x2000, USED = 0x3000, BUF = 0x10000, MEMSZ = 1 << 20;
    GuestMemory mem;
    VirtQueue vq;
    final DescriptorChain c = new DescriptorChain();
    long avail, used;
    int availIdx;

    /** Records the calls and checks the used ring's state at each publication hook. */
    final class Recorder implements InflightTracker {
        final List<String> calls = new ArrayList<>();
        int[] inFlight = new int[0];
        int recoveredAt = -1;

        @Override public int[] recoverHeads(int ringUsedIdx) {
            recoveredAt = ringUsedIdx;
            calls.add("recover " + ringUsedIdx);
            return inFlight;
        }

        @Override public void begin(int head) { calls.add("begin " + head); }

        @Override public void prePut(int head) {
            assertEquals(vq.usedIdx(), ringUsedIdx(), "prePut runs before used.idx moves");
            calls.add("pre " + head);
        }

        @Override public void postPut(int head, int usedIdx) {
            assertEquals(usedIdx, ringUsedIdx(), "postPut runs after used.idx is stored");
            assertEquals(head, NativeMemory.getIntLE(used + 4 + 8L * ((usedIdx - 1) & (N - 1))), "the element is in the ring");
            calls.add("post " + head + "@" + usedIdx);
        }
    }

    int ringUsedIdx() { return NativeMemory.getShortLE(used + 2) & 0xffff; }

    @BeforeEach
    void setUp() throws Exception {
        mem = GuestMemory.anonymous(MEMSZ);
        avail = mem.translate(AVAIL, 6 + 2 * N);
        used = mem.translate(USED, 6 + 8 * N);
        long desc = mem.translate(DESC, 16 * N);
        for (int i = 0; i < N; i++) putDesc(desc, i, BUF + 4096L * i, 64, VIRTQ_DESC_F_WRITE, 0);
        vq = new VirtQueue(0, N);
        vq.setMemory(mem);
        vq.setAddresses(DESC, AVAIL, USED);
        vq.setFeatures(bit(F_VERSION_1));
    }

    @AfterEach
    void tearDown() { mem.close(); }

    void offer(int head) {
        NativeMemory.putShortLE(avail + 4 + 2L * (availIdx % N), (short) head);
        availIdx++;
        NativeMemory.putShortLE(avail + 2, (short) availIdx);
    }

    int popHead() {
        assertEquals(VirtQueue.POP_CHAIN, vq.pop(c));
        assertNull(c.error());
        return c.head();
    }

    @Test
    void hooksFollowPopsAndPublications() {
        Recorder t = new Recorder();
        vq.setInflightTracker(t);
        assertNull(vq.activate());
        offer(4);
        offer(1);
        offer(7);
        assertEquals(List.of(4, 1, 7), List.of(popHead(), popHead(), popHead()));
        vq.push(1, 64);
        vq.push(7, 0);
        assertEquals(VirtQueue.POP_EMPTY, vq.pop(c));
        assertEquals(List.of("recover 0", "begin 4", "begin 1", "begin 7", "pre 1", "post 1@1", "pre 7", "post 7@2"), t.calls);
    }

    @Test
    void inFlightHeadsComeBackFirstInRecoveredOrderThenTheAvailRingResumes() {
        // a previous device popped 4, 1, 7, 9 (avail slots 0..3) and completed 1 and 9: used.idx = 2
        for (int h : new int[] {4, 1, 7, 9, 12}) offer(h);    // 12 was never popped
        NativeMemory.putIntLE(used + 4, 1);
        NativeMemory.putIntLE(used + 12, 9);
        NativeMemory.putShortLE(used + 2, (short) 2);
        Recorder t = new Recorder();
        t.inFlight = new int[] {7, 4};                  // the tracker's counter order, not head or slot order
        vq.setInflightTracker(t);
        vq.setLastAvailIdx(2);                          // what QEMU sends after a crash: the used index
        assertNull(vq.activate());
        assertEquals(2, t.recoveredAt, "recovery sees the ring's used index");
        assertEquals(2, vq.resubmittedAtActivation());
        assertEquals(4, vq.lastAvailIdx(), "popped = used + in flight");
        assertEquals(3, vq.pending(), "two resubmissions and one new entry");
        assertEquals(List.of(7, 4, 12), List.of(popHead(), popHead(), popHead()));
        assertEquals(VirtQueue.POP_EMPTY, vq.pop(c));
        assertEquals(List.of("recover 2", "begin 12"), t.calls, "resubmitted heads are not begun again");
        vq.push(4, 0);
        vq.push(7, 0);
        vq.push(12, 0);
        assertEquals(5, ringUsedIdx());
        assertEquals(5, vq.lastAvailIdx());
        assertEquals(0, vq.pending());
    }

    @Test
    void recoveryWithNothingInFlightResumesAtTheUsedIndex() {
        NativeMemory.putShortLE(used + 2, (short) 3);
        for (int i = 0; i < 3; i++) offer(i);
        Recorder t = new Recorder();
        vq.setInflightTracker(t);
        vq.setLastAvailIdx(3);
        assertNull(vq.activate());
        assertEquals(0, vq.resubmittedAtActivation());
        assertEquals(3, vq.lastAvailIdx());
        assertEquals(VirtQueue.POP_EMPTY, vq.pop(c));
    }

    @Test
    void aRecordNamingImpossibleHeadsIsRefused() {
        Recorder t = new Recorder();
        t.inFlight = new int[] {3, N};
        vq.setInflightTracker(t);
        String err = vq.activate();
        assertNotNull(err);
        assertTrue(err.contains("head " + N), err);
        assertFalse(vq.isActive());
        t.inFlight = new int[N + 1];
        assertNotNull(vq.activate(), "more heads than the ring holds");
    }

    @Test
    void withoutATrackerNothingIsResubmitted() {
        NativeMemory.putShortLE(used + 2, (short) 2);
        vq.setLastAvailIdx(2);
        offer(0);
        offer(1);
        offer(5);
        assertNull(vq.activate());
        assertEquals(2, vq.lastAvailIdx(), "the front-end's base is kept");
        assertEquals(5, popHead());
        assertEquals(VirtQueue.POP_EMPTY, vq.pop(c));
    }
}
