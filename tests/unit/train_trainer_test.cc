// The training loop across ranks (threads over the in-process transport):
// data- and tensor-parallel steps equal the single-process step, a resumed
// run repeats the uninterrupted run's losses exactly, and the ranks' weight
// check catches a replica that drifted.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <thread>

#include "collectives/collectives.h"
#include "collectives/train_comm.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/trainer.h"
#include "tests/unit/test_paths.h"

namespace tandem::train {
namespace {

constexpr auto kStepTimeout = std::chrono::seconds(20);

// Token ids with structure a model can learn: a noisy counter mod vocab.
TokenCorpus synthetic_corpus(int vocab, size_t train, size_t val) {
  TokenCorpus c;
  c.vocab_size = vocab;
  uint64_t x = 12345;
  auto next = [&](size_t i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((i + ((x >> 60) == 0 ? (x >> 33) : 0)) % static_cast<uint64_t>(vocab));
  };
  for (size_t i = 0; i < train; ++i) c.train.push_back(next(i));
  for (size_t i = 0; i < val; ++i) c.val.push_back(next(i));
  return c;
}

TrainerOptions tiny_options() {
  TrainerOptions o;
  o.shape.dim = 16;
  o.shape.n_layers = 2;
  o.shape.n_heads = 4;
  o.shape.n_kv_heads = 2;
  o.shape.hidden_dim = 24;
  o.shape.vocab_size = 11;
  o.shape.seq_len = 8;
  o.batch_size = 4;
  o.iters = 6;
  o.lr = LrSchedule{1e-2, 1e-3, 2, 6};
  o.eval_interval = 3;
  o.eval_batches = 2;
  o.checkpoint_interval = 0;
  o.hash_check_interval = 1;
  o.bucket_bytes = 256;  // many buckets: the overlap path really runs
  return o;
}

struct RankRun {
  std::vector<double> losses;
  std::vector<double> grad_norms;  // AdamW hides a gradient's scale; the norm does not
  std::vector<double> val_losses;
  std::vector<float> full_params;  // tp=1 layout
  Status status;
};

// Runs body(rank, comm) on `world` ranks (threads) and returns each one's
// Status; a rank that fails aborts its communicator, so the others fail at
// once instead of waiting for the step deadline.
std::vector<Status> on_ranks(int world, const std::function<Status(int, TrainComm&)>& body) {
  auto comms = collectives::make_local_group(world);
  std::vector<Status> results(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      collectives::Communicator& mine = *comms[static_cast<size_t>(r)];
      auto comm = collectives::make_train_comm(mine, kStepTimeout);
      Status s = comm.ok() ? body(r, **comm) : comm.status();
      if (!s.ok()) mine.abort(s.message());
      results[static_cast<size_t>(r)] = std::move(s);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

// Runs `steps` steps on `world` ranks (threads), each rank from start().
std::vector<RankRun> run_group(const TrainerOptions& options, const TokenCorpus& corpus, int steps) {
  std::vector<RankRun> runs(static_cast<size_t>(options.dp * options.tp));
  const std::vector<Status> results = on_ranks(options.dp * options.tp, [&](int r, TrainComm& comm) -> Status {
    RankRun& run = runs[static_cast<size_t>(r)];
    TANDEM_ASSIGN_OR_RETURN(auto trainer, Trainer::create(options, corpus, r, &comm, nullptr));
    TANDEM_RETURN_IF_ERROR(trainer->start().status());
    for (int s = 0; s < steps && trainer->step() < options.iters; ++s) {
      TANDEM_ASSIGN_OR_RETURN(const StepReport report, trainer->train_step());
      run.losses.push_back(report.train_loss);
      run.grad_norms.push_back(report.grad_norm);
      if (!std::isnan(report.val_loss)) run.val_losses.push_back(report.val_loss);
    }
    if (options.tp > 1) return trainer->model().gather_full(&run.full_params);
    const auto p = trainer->model().params();
    run.full_params.assign(p.begin(), p.end());
    return Status::Ok();
  });
  for (size_t r = 0; r < runs.size(); ++r) runs[r].status = results[r];
  return runs;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double rel) {
  ASSERT_EQ(a.size(), b.size());
  double scale = 0, worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(a[i])));
    worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  EXPECT_LE(worst, rel * scale) << "largest difference " << worst << " against a scale of " << scale;
}

TEST(Trainer, DataParallelStepsEqualTheSingleProcessSteps) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  TrainerOptions single = tiny_options();
  TrainerOptions dp2 = single;
  dp2.dp = 2;
  const auto a = run_group(single, corpus, 6);
  const auto b = run_group(dp2, corpus, 6);
  ASSERT_TRUE(a[0].status.ok()) << a[0].status.to_string();
  ASSERT_TRUE(b[0].status.ok() && b[1].status.ok()) << b[0].status.to_string() << " / " << b[1].status.to_string();
  ASSERT_EQ(a[0].losses.size(), 6u);
  for (size_t s = 0; s < 6; ++s) {
    EXPECT_NEAR(b[0].losses[s], a[0].losses[s], 1e-5 * a[0].losses[s]) << "step " << s + 1;
    EXPECT_NEAR(b[0].grad_norms[s], a[0].grad_norms[s], 1e-5 * a[0].grad_norms[s]) << "step " << s + 1;
  }
  ASSERT_EQ(b[0].val_losses.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(b[0].val_losses[i], a[0].val_losses[i], 1e-5 * a[0].val_losses[i]);
  expect_close(b[0].full_params, a[0].full_params, 1e-5);
  EXPECT_EQ(b[0].full_params, b[1].full_params) << "the two replicas must hold identical weights";
}

TEST(Trainer, TensorParallelStepsEqualTheSingleProcessSteps) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  TrainerOptions single = tiny_options();
  TrainerOptions tp2 = single;
  tp2.tp = 2;
  const auto a = run_group(single, corpus, 6);
  const auto b = run_group(tp2, corpus, 6);
  ASSERT_TRUE(a[0].status.ok()) << a[0].status.to_string();
  ASSERT_TRUE(b[0].status.ok() && b[1].status.ok()) << b[0].status.to_string() << " / " << b[1].status.to_string();
  for (size_t s = 0; s < 6; ++s) {
    EXPECT_NEAR(b[0].losses[s], a[0].losses[s], 1e-5 * a[0].losses[s]) << "step " << s + 1;
    EXPECT_NEAR(b[0].grad_norms[s], a[0].grad_norms[s], 1e-5 * a[0].grad_norms[s]) << "step " << s + 1;
  }
  expect_close(b[0].full_params, a[0].full_params, 1e-5);
  EXPECT_EQ(b[0].full_params, b[1].full_params) << "both ranks gather the same model";
}

TEST(Trainer, AccumulatedMicroBatchesEqualOneBatch) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  TrainerOptions whole = tiny_options();
  TrainerOptions accumulated = whole;
  accumulated.micro_batch = 1;  // four micro-steps per step
  TrainerOptions both = whole;
  both.dp = 2;
  both.micro_batch = 1;  // two ranks x two micro-steps
  const auto a = run_group(whole, corpus, 4);
  const auto b = run_group(accumulated, corpus, 4);
  const auto c = run_group(both, corpus, 4);
  ASSERT_TRUE(a[0].status.ok() && b[0].status.ok() && c[0].status.ok())
      << a[0].status.to_string() << b[0].status.to_string() << c[0].status.to_string();
  for (size_t s = 0; s < 4; ++s) {
    EXPECT_NEAR(b[0].losses[s], a[0].losses[s], 1e-5 * a[0].losses[s]) << "step " << s + 1;
    EXPECT_NEAR(c[0].losses[s], a[0].losses[s], 1e-5 * a[0].losses[s]) << "step " << s + 1;
    EXPECT_NEAR(b[0].grad_norms[s], a[0].grad_norms[s], 1e-5 * a[0].grad_norms[s]) << "step " << s + 1;
    EXPECT_NEAR(c[0].grad_norms[s], a[0].grad_norms[s], 1e-5 * a[0].grad_norms[s]) << "step " << s + 1;
  }
  expect_close(b[0].full_params, a[0].full_params, 1e-5);
  expect_close(c[0].full_params, a[0].full_params, 1e-5);
}

TEST(Trainer, OverlappedAndSerialAllReduceGiveTheSameWeights) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  TrainerOptions overlapped = tiny_options();
  overlapped.dp = 2;
  TrainerOptions serial = overlapped;
  serial.overlap = false;
  const auto a = run_group(overlapped, corpus, 4);
  const auto b = run_group(serial, corpus, 4);
  ASSERT_TRUE(a[0].status.ok() && b[0].status.ok()) << a[0].status.to_string() << b[0].status.to_string();
  EXPECT_EQ(a[0].full_params, b[0].full_params);
  EXPECT_EQ(a[0].losses, b[0].losses);
}

// train.overlap: auto decides per rank (its host's CPUs), so two ranks may
// choose differently; their exchanges must still match call for call.
TEST(Trainer, RanksThatChoseDifferentOverlapsAgreeOnOne) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  TrainerOptions options = tiny_options();
  options.dp = 2;
  options.bucket_bytes = 4096;  // several buckets: overlapped and serial exchanges differ in calls
  const auto serial = run_group([&] { TrainerOptions o = options; o.overlap = false; return o; }(), corpus, 3);
  ASSERT_TRUE(serial[0].status.ok()) << serial[0].status.to_string();
  std::vector<std::vector<float>> params(2);
  std::vector<int> overlapping(2, 1);  // not vector<bool>: the two rank threads write neighbouring bits
  const std::vector<Status> results = on_ranks(2, [&](int r, TrainComm& comm) -> Status {
    TrainerOptions mine = options;
    mine.overlap = r == 0;
    TANDEM_ASSIGN_OR_RETURN(auto trainer, Trainer::create(mine, corpus, r, &comm, nullptr));
    TANDEM_RETURN_IF_ERROR(trainer->start().status());
    overlapping[static_cast<size_t>(r)] = trainer->overlapping() ? 1 : 0;
    for (int s = 0; s < 3; ++s) TANDEM_RETURN_IF_ERROR(trainer->train_step().status());
    const auto p = trainer->model().params();
    params[static_cast<size_t>(r)].assign(p.begin(), p.end());
    return Status::Ok();
  });
  for (const Status& s : results) ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(overlapping, (std::vector<int>{0, 0}));
  EXPECT_EQ(params[0], serial[0].full_params);
  EXPECT_EQ(params[1], serial[0].full_params);
}

// A model trained on a tokenizer's ids is exported with that tokenizer's
// bytes beside it, replacing an older export's whole.
TEST(Trainer, ExportCarriesTheTokenizerFileOverAnOldOne) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  auto trainer = Trainer::create(tiny_options(), corpus, 0, nullptr, nullptr);
  ASSERT_TRUE(trainer.ok()) << trainer.status().to_string();
  ASSERT_TRUE((*trainer)->start().ok());
  testing::TempDir dir;
  const std::string source = dir.file("tok.bin"), out = dir.file("export");
  testing::write_file(source, std::string("tokenizer bytes\0\x01\x02", 18));
  std::filesystem::create_directories(out);
  testing::write_file(out + "/tokenizer.bin", std::string(4096, 'o'));  // a longer, older export
  ASSERT_TRUE((*trainer)->export_model(out, source).ok());
  EXPECT_EQ(testing::read_file(out + "/tokenizer.bin"), std::string("tokenizer bytes\0\x01\x02", 18));
  EXPECT_FALSE(std::filesystem::exists(out + "/tokenizer.bin.tmp"));
  EXPECT_EQ((*trainer)->export_model(out, dir.file("missing.bin")).code(), StatusCode::kNotFound);
}

// Trains 8 steps (dp=2) uninterrupted, then again checkpointing every 3
// steps and stopped after `stop_after`, `crash` applied to its out_dir, then
// resumed: the resumed run repeats the uninterrupted losses and weights from
// step 4 on.
void expect_resume_repeats_the_whole_run(int stop_after, const std::function<void(const std::string&)>& crash) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  testing::TempDir dir;
  TrainerOptions options = tiny_options();
  options.dp = 2;
  options.iters = 8;
  const auto whole = run_group(options, corpus, 8);
  ASSERT_TRUE(whole[0].status.ok()) << whole[0].status.to_string();

  TrainerOptions saving = options;
  saving.out_dir = dir.path();
  saving.checkpoint_interval = 3;
  const auto first = run_group(saving, corpus, stop_after);
  ASSERT_TRUE(first[0].status.ok()) << first[0].status.to_string();
  crash(dir.path());
  TrainerOptions resuming = saving;
  resuming.resume = true;
  const auto rest = run_group(resuming, corpus, 8);
  ASSERT_TRUE(rest[0].status.ok() && rest[1].status.ok()) << rest[0].status.to_string() << rest[1].status.to_string();
  ASSERT_EQ(rest[0].losses.size(), 5u) << "resumes after step 3";
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(rest[0].losses[i], whole[0].losses[3 + i]) << "step " << 4 + i;
  EXPECT_EQ(rest[0].full_params, whole[0].full_params);
}

TEST(Trainer, ResumedRunRepeatsTheUninterruptedLosses) {
  expect_resume_repeats_the_whole_run(5, [](const std::string&) {});  // checkpoints at 3; "dies" after step 5
}

// The first checkpoint's crash window: every rank wrote step 3 and agreed,
// rank 0 committed it, rank 1 died before committing (no `latest` at all).
// Both still hold step 3: the run resumes from it, and rank 1 commits it.
TEST(Trainer, ARankThatDiedBeforeCommittingTheFirstCheckpointResumesFromIt) {
  expect_resume_repeats_the_whole_run(4, [](const std::string& out_dir) {  // checkpoints at 3 only
    ASSERT_TRUE(std::filesystem::remove(rank_directory(out_dir, 1) + "/latest"));
  });
}

TEST(Trainer, ResumeRefusesACheckpointOfAnotherJob) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  testing::TempDir dir;
  TrainerOptions options = tiny_options();
  options.out_dir = dir.path();
  options.checkpoint_interval = 2;
  ASSERT_TRUE(run_group(options, corpus, 2)[0].status.ok());
  TrainerOptions other = options;
  other.resume = true;
  other.shape.hidden_dim = 32;
  const auto runs = run_group(other, corpus, 1);
  EXPECT_EQ(runs[0].status.code(), StatusCode::kFailedPrecondition) << runs[0].status.to_string();
  EXPECT_NE(runs[0].status.message().find(dir.path()), std::string::npos) << runs[0].status.to_string();
}

// dp=2 options checkpointing every 2 steps into `dir`, after `steps` steps of them.
TrainerOptions checkpointed_after(const TokenCorpus& corpus, const testing::TempDir& dir, int steps) {
  TrainerOptions options = tiny_options();
  options.dp = 2;
  options.out_dir = dir.path();
  options.checkpoint_interval = 2;
  EXPECT_TRUE(run_group(options, corpus, steps)[0].status.ok());
  return options;
}

TEST(Trainer, AFreshRunRefusesToOverwriteACheckpoint) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  testing::TempDir dir;
  const TrainerOptions options = checkpointed_after(corpus, dir, 2);
  const auto again = run_group(options, corpus, 1);
  for (const RankRun& run : again) {
    EXPECT_EQ(run.status.code(), StatusCode::kFailedPrecondition) << run.status.to_string();
    EXPECT_NE(run.status.message().find("set train.resume=true"), std::string::npos) << run.status.to_string();
  }
}

// Two runs on one out_dir would commit over each other's checkpoints and
// delete each other's half-written shards: the second is refused while the
// first holds the directory, and may start once it is gone.
TEST(Trainer, ASecondRunOnTheSameOutDirIsRefusedWhileTheFirstHoldsIt) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  testing::TempDir dir;
  TrainerOptions options = tiny_options();
  options.out_dir = dir.path();
  auto first = Trainer::create(options, corpus, 0, nullptr, nullptr);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  ASSERT_TRUE((*first)->start().ok());
  auto second = Trainer::create(options, corpus, 0, nullptr, nullptr);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  const Result<int64_t> refused = (*second)->start();
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().to_string();
  EXPECT_NE(refused.status().message().find("is in use by another run"), std::string::npos)
      << refused.status().to_string();
  first->reset();
  auto third = Trainer::create(options, corpus, 0, nullptr, nullptr);
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  EXPECT_TRUE((*third)->start().ok());
}

// A rank whose own manifest is unreadable fails with its reason, and the
// other fails at once (not at the step deadline) saying which rank failed.
TEST(Trainer, ARankThatCannotResumeStopsTheOthersAtOnce) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  testing::TempDir dir;
  TrainerOptions options = checkpointed_after(corpus, dir, 2);
  testing::write_file(rank_directory(dir.path(), 1) + "/latest", "not a step\n");
  options.resume = true;
  const auto start = std::chrono::steady_clock::now();
  const auto runs = run_group(options, corpus, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_NE(runs[1].status.message().find("latest"), std::string::npos) << runs[1].status.to_string();
  EXPECT_EQ(runs[0].status.code(), StatusCode::kAborted) << runs[0].status.to_string();
  EXPECT_NE(runs[0].status.message().find("rank 1 failed"), std::string::npos) << runs[0].status.to_string();
}

// Rank 1 crashed before committing step 4 (its `latest` still says 2), and
// its step-2 shard is damaged. The resume fails on rank 1; rank 0 must not
// have dropped its step 4 on the way, as it did when it recommitted step 2
// before knowing every rank had loaded it.
TEST(Trainer, AFailedResumeKeepsTheNewerCheckpoint) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  testing::TempDir dir;
  TrainerOptions options = checkpointed_after(corpus, dir, 4);
  testing::write_file(rank_directory(dir.path(), 1) + "/latest", "2\n");
  const std::string damaged = shard_path(dir.path(), 1, 2);
  std::string bytes = testing::read_file(damaged);
  bytes.back() = static_cast<char>(bytes.back() ^ 0x5A);
  testing::write_file(damaged, bytes);
  options.resume = true;
  const auto runs = run_group(options, corpus, 1);
  EXPECT_EQ(runs[1].status.code(), StatusCode::kDataLoss) << runs[1].status.to_string();
  EXPECT_EQ(runs[0].status.code(), StatusCode::kAborted) << runs[0].status.to_string();
  EXPECT_TRUE(std::filesystem::exists(shard_path(dir.path(), 0, 4)));
  EXPECT_EQ(testing::read_file(rank_directory(dir.path(), 0) + "/latest"), "4\n");
}

// Nodes that disagree on the job (here: another training text) are refused
// before anything trains, instead of failing later in a mismatched exchange.
TEST(Trainer, RanksTrainingDifferentJobsAreRefused) {
  const TokenCorpus a = synthetic_corpus(11, 4000, 600);
  const TokenCorpus b = synthetic_corpus(11, 4001, 600);
  TrainerOptions options = tiny_options();
  options.dp = 2;
  const std::vector<Status> results = on_ranks(2, [&](int r, TrainComm& comm) -> Status {
    TANDEM_ASSIGN_OR_RETURN(auto trainer, Trainer::create(options, r == 0 ? a : b, r, &comm, nullptr));
    return trainer->start().status();
  });
  for (const Status& s : results) {
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.to_string();
    EXPECT_NE(s.message().find("rank 1 trains another job than rank 0"), std::string::npos) << s.to_string();
  }
}

// A non-finite gradient stops every rank before it reaches the weights.
TEST(Trainer, ANonFiniteGradientStopsTheStepAndKeepsTheWeights) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  TrainerOptions options = tiny_options();
  auto comms = collectives::make_local_group(1);
  auto comm = collectives::make_train_comm(*comms[0], kStepTimeout);
  ASSERT_TRUE(comm.ok());
  auto trainer = Trainer::create(options, corpus, 0, comm->get(), nullptr);
  ASSERT_TRUE(trainer.ok()) << trainer.status().to_string();
  ASSERT_TRUE((*trainer)->start().ok());
  const ParamTensor& norm = (*trainer)->model().tensors()[1];  // layers.0.attention_norm: every token passes it
  ASSERT_EQ(norm.name, "layers.0.attention_norm");
  (*trainer)->model().params()[static_cast<size_t>(norm.offset)] = std::numeric_limits<float>::infinity();
  const std::vector<float> before((*trainer)->model().params().begin(), (*trainer)->model().params().end());
  const auto report = (*trainer)->train_step();
  EXPECT_EQ(report.status().code(), StatusCode::kDataLoss) << report.status().to_string();
  EXPECT_NE(report.status().message().find("not finite"), std::string::npos) << report.status().to_string();
  const std::vector<float> after((*trainer)->model().params().begin(), (*trainer)->model().params().end());
  EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)), 0);
  EXPECT_EQ((*trainer)->step(), 0);
}

TEST(Trainer, LossFallsOnLearnableData) {
  const TokenCorpus corpus = synthetic_corpus(11, 20000, 2000);
  TrainerOptions options = tiny_options();
  options.iters = 60;
  options.lr = LrSchedule{1e-2, 1e-3, 5, 60};
  options.eval_interval = 0;
  const auto runs = run_group(options, corpus, 60);
  ASSERT_TRUE(runs[0].status.ok()) << runs[0].status.to_string();
  ASSERT_EQ(runs[0].val_losses.size(), 1u);
  // ln(11) = 2.40 is the uniform guess; the data is a counter, nearly deterministic.
  EXPECT_GT(runs[0].losses.front(), 2.2);
  EXPECT_LT(runs[0].val_losses.back(), 1.0);
}

TEST(Trainer, WeightCheckStopsReplicasThatDrifted) {
  const TokenCorpus corpus = synthetic_corpus(11, 4000, 600);
  TrainerOptions options = tiny_options();
  options.dp = 2;
  const std::vector<Status> results = on_ranks(2, [&](int r, TrainComm& comm) -> Status {
    TANDEM_ASSIGN_OR_RETURN(auto trainer, Trainer::create(options, corpus, r, &comm, nullptr));
    TANDEM_RETURN_IF_ERROR(trainer->start().status());
    if (r == 1) trainer->model().params()[7] += 1e-3f;  // one weight of one replica
    return trainer->train_step().status();
  });
  for (const Status& s : results) {
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.to_string();
    EXPECT_NE(s.message().find("weights differ after step 1"), std::string::npos) << s.to_string();
  }
}

TEST(Trainer, OptionsNameWhatIsWrong) {
  TrainerOptions o = tiny_options();
  o.dp = 2;
  o.batch_size = 5;
  Status s = validate_trainer_options(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("batch_size"), std::string::npos) << s.to_string();
  o = tiny_options();
  o.dp = 2;
  o.tp = 2;
  EXPECT_NE(validate_trainer_options(o).message().find("not both"), std::string::npos);
  o = tiny_options();
  o.resume = true;
  EXPECT_NE(validate_trainer_options(o).message().find("out_dir"), std::string::npos);
}

}  // namespace
}  // namespace tandem::train
