/** A campaign's worker thread (sim-campaign.ts): runs the seed at each index it is sent, posts the run back. */
import { parentPort, workerData } from 'node:worker_threads';
import { runSeed, type CampaignOptions } from './sim-campaign.js';

const { seeds, options } = workerData as { seeds: readonly number[]; options: CampaignOptions };
parentPort!.on('message', (index: number) => {
  void runSeed(seeds[index]!, options).then((run) => parentPort!.postMessage({ index, run }));
});
