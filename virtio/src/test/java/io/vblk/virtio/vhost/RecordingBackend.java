package io.vblk.virtio.vhost;

import io.vblk.block.NativeMemory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** A fake device for protocol tests: records calls; on start it reads the first descriptor's addr from guest memory. */
class RecordingBackend implements VhostUserBackend {
    final List<String> events = Collections.synchronizedList(new ArrayList<>());
    final byte[] config = new byte[60];
    volatile long acked = -1;
    volatile long firstDescAddr;
    volatile int nextAvailOnStop = 7;
    volatile Runnable notifier;
    final int queues;

    RecordingBackend(int queues) {
        this.queues = queues;
        config[0] = 0x20;         // capacity 32 sectors
        config[34] = (byte) queues;
    }

    @Override public long deviceFeatures() { return (1L << 32) | (1L << 28) | (1L << 9) | (1L << 11); }
    @Override public int numQueues() { return queues; }
    @Override public byte[] readConfig() { return config.clone(); }

    @Override
    public boolean writeConfig(int offset, byte[] data) {
        if (offset != 32 || data.length != 1) return false;
        config[32] = data[0];
        events.add("config wce=" + data[0]);
        return true;
    }

    @Override public void setFeatures(long features) { acked = features; events.add("features"); }

    @Override
    public String startQueue(VhostUserQueue q) {
        firstDescAddr = NativeMemory.getLongLE(q.descAddr());
        events.add("start " + q.index() + " size " + q.size() + " base " + q.lastAvailIdx());
        q.signalCall();
        return null;
    }

    @Override
    public int stopQueue(VhostUserQueue q) {
        events.add("stop " + q.index());
        return nextAvailOnStop;
    }

    @Override public void setConfigChangeNotifier(Runnable n) { notifier = n; }
    @Override public void reset() { events.add("reset"); }

    volatile long addedRegionWord;   // first 8 bytes of the last region added under a running ring

    @Override
    public void memoryRegionAdded(GuestMemoryTable.Region r) {
        addedRegionWord = NativeMemory.getLongLE(r.host());
        events.add("region added gpa 0x" + Long.toHexString(r.guestPhys()));
    }
}
