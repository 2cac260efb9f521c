// The progress bar's arithmetic on an injected clock: the count, the rate and the ETA cover
// every step from progress_start (the bar used to start after step 1 and still count it).
#include <string.h>

#include "engine/core/progress.h"
#include "tests/test.h"

static double fake_now;
static double fake_clock(void) { return fake_now; }

TEST(progress_rate_counts_every_step_from_the_start) {
    progress p;
    fake_now = 100.0;
    progress_start_with_clock(&p, "image 1/1", 4, fake_clock, 0);
    char line[256];
    // 4 steps of 0.5 s each: 2 step/s throughout, ETA the remaining steps at that rate
    const char *want[4] = {"image 1/1 1/4 2.00 step/s, ETA 0:02", "image 1/1 2/4 2.00 step/s, ETA 0:01",
                           "image 1/1 3/4 2.00 step/s, ETA 0:01", "image 1/1 4/4 2.00 step/s, ETA 0:00"};
    for (int k = 0; k < 4; k++) {
        fake_now += 0.5;
        progress_step(&p, NULL);
        progress_line(&p, fake_now, line, sizeof line);
        CHECK_MSG(strcmp(line, want[k]) == 0, "after step %d: '%s', want '%s'", k + 1, line, want[k]);
    }
    progress_end(&p);
    // slow steps read as seconds per step, with the extra text after the ETA
    fake_now = 0;
    progress_start_with_clock(&p, "train", 10, fake_clock, 0);
    fake_now = 3.0;
    progress_step(&p, "loss 0.25");
    fake_now = 6.0;
    progress_step(&p, NULL);
    progress_line(&p, fake_now, line, sizeof line);
    CHECK_MSG(strcmp(line, "train 2/10 3.00 s/step, ETA 0:24, loss 0.25") == 0, "'%s'", line);
    progress_end(&p);
    // unequal steps: the rate is the mean since the start, not the last step's
    fake_now = 0;
    progress_start_with_clock(&p, "x", 3, fake_clock, 0);
    fake_now = 0.1;
    progress_step(&p, NULL);
    fake_now = 0.4;
    progress_step(&p, NULL);
    progress_line(&p, fake_now, line, sizeof line);
    CHECK_MSG(strcmp(line, "x 2/3 5.00 step/s, ETA 0:00") == 0, "'%s'", line);
    progress_end(&p);
    // a resumed run (the trainer sets done after start): earlier steps count in the total only
    fake_now = 50;
    progress_start_with_clock(&p, "train", 1000, fake_clock, 0);
    p.done = 500;
    fake_now = 52;
    progress_step(&p, NULL);
    progress_line(&p, fake_now, line, sizeof line);
    CHECK_MSG(strcmp(line, "train 501/1000 2.00 s/step, ETA 16:38") == 0, "'%s'", line);
    progress_end(&p);
}
